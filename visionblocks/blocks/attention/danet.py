"""Dual Attention (Fu et al., Dual Attention Network for Scene Segmentation, CVPR 2019, arXiv 1809.02983).

Position attention (Sec. 3.2): from A (C', N = H*W), ``B, C = conv1x1(A)`` (C'/8 channels) and
``D = conv1x1(A)`` (C'), ``s_ji = exp(B_i . C_j) / sum_i exp(B_i . C_j)`` (``S = softmax(B^T C)``, normalised over
i) and ``E_j = alpha sum_i s_ji D_i + A_j``.  Channel attention (Sec. 3.3): ``x_ji = exp(A_i . A_j) /
sum_i exp(A_i . A_j)`` and ``E_j = beta sum_i x_ji A_i + A_j``.  alpha and beta start at 0.  Both are softmax
attentions without scaling, computed with ``F.scaled_dot_product_attention(scale=1)``.

The dual attention module (Sec. 3.1, Fig. 2): a 3x3 conv-BN-ReLU reduces the C input channels to C' = C/4
for each branch, each attention output is transformed by another 3x3 conv-BN-ReLU and the two are summed.
In the paper a final convolution then predicts the segmentation map; here a 1x1 convolution maps the fused
C' channels back to C so the block keeps its input shape.

Deviation from the authors' code: their channel attention takes the softmax of ``max(energy) - energy``
(the max over each row, keepdim), which is ``softmax(-A A^T)``: a per-row constant does not change a softmax,
so their attention weights the *least* similar channels most, the opposite sign of the paper's Eq. 3.  We
follow the paper's ``softmax(A A^T)``: the authors' (junfu1115/DANet) weights do not give their network's
output in this block.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvNormAct, LayerType, check_nchw, check_positive_int, records_grad, reduced_channels, sdpa,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["DualAttention", "PositionAttention", "ChannelAttention"]


class PositionAttention(nn.Module):
    """DANet's position attention module (PAM) on ``channels`` channels."""

    def __init__(self, channels: int, qk_reduction: int = 8):
        super().__init__()
        qk = reduced_channels(channels, qk_reduction)
        self.conv_b = nn.Conv2d(channels, qk, 1)
        self.conv_c = nn.Conv2d(channels, qk, 1)
        self.conv_d = nn.Conv2d(channels, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # E_j = sum_i softmax_i(C_j . B_i) D_i: position j queries with C_j, keys are B_i
        q = self.conv_c(x).flatten(2).transpose(1, 2).unsqueeze(1)      # (B, 1, N, C'/8)
        k = self.conv_b(x).flatten(2).transpose(1, 2).unsqueeze(1)      # (B, 1, N, C'/8)
        v = self.conv_d(x).flatten(2).transpose(1, 2).unsqueeze(1)      # (B, 1, N, C')
        if (q.dtype not in (torch.float32, torch.float64)    # (SDPA's math path computes in float32 there)
                or q.device.type != "cpu"                     # (CUDA: the memory-efficient kernel, no map)
                or records_grad(q, k, v) or torch.jit.is_tracing()):  # (a trace: no softmax(out=) in ONNX)
            e = sdpa(q, k, v, scale=1.0)       # (B, 1, N, C')
        else:  # no graph, on the CPU: one (B, N, N) map, softmaxed in place (SDPA's math path there, for
            # C'/8 != C', keeps two)
            energy = q.squeeze(1) @ k.squeeze(1).transpose(1, 2)         # (B, N, N): [j, i] = C_j . B_i
            e = (torch.softmax(energy, dim=-1, out=energy) @ v.squeeze(1)).unsqueeze(1)
        return x + self.alpha * e.squeeze(1).transpose(1, 2).unflatten(2, x.shape[2:])  # x first: its layout


class ChannelAttention(nn.Module):
    """DANet's channel attention module (CAM): ``E_j = beta sum_i softmax_i(A_j . A_i) A_i + A_j``."""

    def __init__(self):
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x.flatten(2)                                                 # (B, C, N)
        if a.device.type == "cpu" and records_grad(a):
            # the (C, C) map written out: SDPA's CPU flash backward recomputes exp(S - logsumexp) from S re-summed
            # in another order, and these unscaled logits (A_j . A_i over N positions, ~1e3 for post-ReLU maps)
            # leave its input gradient 1e-4..2e-3 off in float32 (this form: 5e-8); also 0.64-0.97x its time
            e = torch.softmax(a @ a.transpose(1, 2), dim=-1) @ a
        else:
            e = sdpa(a[:, None], a[:, None], a[:, None], scale=1.0).squeeze(1)
        return x + self.beta * e.unflatten(2, x.shape[2:])  # x first: its layout


@register_block("danet", family="attention", layout="nchw",
                paper="Fu et al., Dual Attention Network for Scene Segmentation, CVPR 2019",
                url="https://arxiv.org/abs/1809.02983",
                example=Example(args=(64,), kwargs={}, input_shape=(2, 64, 14, 14)))
@validated()
class DualAttention(nn.Module):
    """Position and channel attention branches on reduced features, summed and projected back to C.

    Two widths: the branches work on C' = C // ``reduction`` channels, and inside the position attention the
    queries and keys (B and C of the paper) have C' // ``qk_reduction`` channels while the values keep C'.

    Args:
        channels: input (= output) channels C (any).
        reduction: C' = max(1, C // reduction) channels inside the branches (authors' code: 4).
        qk_reduction: the position attention's B and C have max(1, C' // qk_reduction) channels (paper: 8).
        act_layer, norm_layer: of the 3x3 convolutions (paper: ReLU, BatchNorm).
    """

    def __init__(self, channels: int, reduction: int = 4, qk_reduction: int = 8, act_layer: LayerType = "relu",
                 norm_layer: LayerType = "batchnorm"):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        inter = reduced_channels(channels, reduction)
        cna = dict(norm_layer=norm_layer, act_layer=act_layer)
        self.pos_reduce = ConvNormAct(channels, inter, 3, **cna)
        self.pos_attn = PositionAttention(inter, qk_reduction)
        self.pos_out = ConvNormAct(inter, inter, 3, **cna)
        self.chan_reduce = ConvNormAct(channels, inter, 3, **cna)
        self.chan_attn = ChannelAttention()
        self.chan_out = ConvNormAct(inter, inter, 3, **cna)
        self.proj = nn.Conv2d(inter, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        p = self.pos_out(self.pos_attn(self.pos_reduce(x)))
        c = self.chan_out(self.chan_attn(self.chan_reduce(x)))
        return self.proj(p + c)
