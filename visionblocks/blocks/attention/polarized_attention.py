"""Polarized Self-Attention (Liu et al., Polarized Self-Attention: Towards High-quality Pixel-wise
Regression, arXiv 2107.00782).

Channel-only branch (Eq. 1): ``A^ch = sigmoid(LN(W_z(W_v(x) softmax_HW(W_q(x)))))`` in R^{C x 1 x 1}, with
``W_v: C -> C/2``, ``W_q: C -> 1`` and ``W_z: C/2 -> C`` 1x1 convolutions, the softmax over the H*W
positions and LayerNorm over the C channels; ``Z^ch = A^ch * x``.

Spatial-only branch (Eq. 3): ``A^sp = sigmoid(softmax_C(GAP(W_q'(x)))^T W_v'(x))`` in R^{1 x H x W}, with
``W_q', W_v': C -> C/2`` 1x1 convolutions and the softmax over the C/2 pooled query channels;
``Z^sp = A^sp * x``.

Parallel layout (Eq. 5): ``y = Z^ch + Z^sp`` (both branches see ``x``).  Sequential layout (Eq. 6):
``y = A^sp(Z^ch) * Z^ch``.  The 1x1 convolutions have no bias, as in the authors' code (the LayerNorm of
the paper's figure follows ``W_z``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import check_divisible, check_nchw, check_positive_int, pointwise_linear, spatial_mean
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["PolarizedSelfAttentionParallel", "PolarizedSelfAttentionSequential", "PolarizedChannelGate",
           "PolarizedSpatialGate"]

_PAPER = "Liu et al., Polarized Self-Attention: Towards High-quality Pixel-wise Regression, arXiv 2021"
_URL = "https://arxiv.org/abs/2107.00782"


class PolarizedChannelGate(nn.Module):
    """The channel-only attention map ``A^ch`` (B, C, 1, 1)."""

    def __init__(self, channels: int, inner: int):
        super().__init__()
        self.wv = nn.Conv2d(channels, inner, 1, bias=False)
        self.wq = nn.Conv2d(channels, 1, 1, bias=False)
        self.wz = nn.Conv2d(inner, channels, 1, bias=False)
        self.ln = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.wv(x).flatten(2)                              # (B, C/2, HW)
        q = torch.softmax(self.wq(x).flatten(2), dim=-1)       # (B, 1, HW)
        z = torch.matmul(v, q.transpose(1, 2)).squeeze(-1)     # (B, C/2)
        z = self.ln(pointwise_linear(z, self.wz))              # (B, C)
        return torch.sigmoid(z)[:, :, None, None]


class PolarizedSpatialGate(nn.Module):
    """The spatial-only attention map ``A^sp`` (B, 1, H, W)."""

    def __init__(self, channels: int, inner: int):
        super().__init__()
        self.wv = nn.Conv2d(channels, inner, 1, bias=False)
        self.wq = nn.Conv2d(channels, inner, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.softmax(spatial_mean(self.wq(x)), dim=-1)     # (B, C/2)
        v = self.wv(x)                                         # (B, C/2, H, W)
        return torch.sigmoid(torch.einsum("bc,bchw->bhw", q, v)).unsqueeze(1)


class _PolarizedBase(nn.Module):
    """The two gates both layouts share."""

    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("reduction", reduction)
        check_divisible("channels", channels, "reduction", reduction)
        inner = channels // reduction
        self.channel_gate = PolarizedChannelGate(channels, inner)
        self.spatial_gate = PolarizedSpatialGate(channels, inner)


@register_block("polarized_attention_parallel", family="attention", layout="nchw", paper=_PAPER, url=_URL,
                example=Example(args=(64,), kwargs={"reduction": 2}, input_shape=(2, 64, 14, 14)))
@validated()
class PolarizedSelfAttentionParallel(_PolarizedBase):
    """PSA, parallel layout: ``y = A^ch(x) * x + A^sp(x) * x``.

    Args:
        channels: input (= output) channels C.
        reduction: internal width of ``W_v``/``W_q`` is ``C / reduction`` (paper: 2); must divide C.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        return x * (self.channel_gate(x) + self.spatial_gate(x))


@register_block("polarized_attention_sequential", family="attention", layout="nchw", paper=_PAPER, url=_URL,
                example=Example(args=(64,), kwargs={"reduction": 2}, input_shape=(2, 64, 14, 14)))
@validated()
class PolarizedSelfAttentionSequential(_PolarizedBase):
    """PSA, sequential layout: ``z = A^ch(x) * x``, ``y = A^sp(z) * z``.

    Args:
        channels: input (= output) channels C.
        reduction: internal width of ``W_v``/``W_q`` is ``C / reduction`` (paper: 2); must divide C.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        z = x * self.channel_gate(x)
        return z * self.spatial_gate(z)
