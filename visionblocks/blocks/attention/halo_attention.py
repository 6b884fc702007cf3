"""Blocked local self-attention with haloing, from HaloNet: Scaling Local Self-Attention for Parameter
Efficient Visual Backbones (Vaswani et al., CVPR 2021, arXiv 2103.12731).

The image is cut into non-overlapping ``b x b`` query blocks; each block attends to the ``(b + 2h) x (b + 2h)``
window around it (the block plus a halo of ``h`` pixels).  Per head, with ``q = W_Q x`` (optionally
subsampled by ``stride``, the paper's strided attention), ``k = W_K x``, ``v = W_V x`` (1x1, no bias):

    y_i = sum_j softmax_j( d^-1/2 q_i . (k_j + r^h_{row(j) - row(i)} + r^w_{col(j) - col(i)}) ) v_j

where ``r^h``/``r^w`` are learned relative-position embeddings of the row and column offsets (the 2-D
relative embeddings of SASA/HaloNet).  The image is zero padded to a multiple of ``b`` and by the halo; the
padded keys are *masked* out of the softmax (an additive ``-inf`` mask given to
``F.scaled_dot_product_attention``), so no attention weight lands on padding and the output does not
depend on the padding; the padded queries are cropped.  There is no output projection (in HaloNet the
bottleneck's 1x1 convolution follows).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (
    DerivedBuffers, check_divisible, check_nchw, check_positive_int, crop_to, is_channels_last, layout_like,
    sdpa, transformed, window_count,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["HaloAttention"]


def _rel_index(block: int, halo: int, stride: int, device=None) -> torch.Tensor:
    """idx[a, r] = table row of the offset between key row r of the window and query row a of the block."""
    a = torch.arange(0, block, stride, device=device)[:, None] + halo  # query position in window coordinates
    r = torch.arange(block + 2 * halo, device=device)[None, :]
    return r - a + (block + halo - 1)


@register_block("halo_attention", family="attention", layout="nchw",
                paper="Vaswani et al., Scaling Local Self-Attention for Parameter Efficient Visual Backbones, CVPR 2021",
                url="https://arxiv.org/abs/2103.12731",
                example=Example(args=(64,), kwargs={"block_size": 8, "halo_size": 3, "num_heads": 8, "dim_head": 16},
                                input_shape=(2, 64, 16, 16)))
@validated()
class HaloAttention(DerivedBuffers, nn.Module):
    """Blocked local self-attention with haloing, on (B, C, H, W).

    Args:
        channels: input channels C (= output channels unless ``out_channels`` is given).
        out_channels: output channels (= heads x value dim), divisible by ``num_heads``.
        block_size: b, side of a query block (paper: 8).
        halo_size: h, halo around a block (paper: 3, i.e. a 14x14 window).
        num_heads: attention heads (paper: 8).
        dim_head: query/key dimension per head (paper: 16); the value dimension per head is
            ``out_channels // num_heads``.
        stride: 1, or a query subsampling factor dividing ``block_size`` (strided attention downsampling;
            output size ``ceil(H / stride)``).
        qkv_bias: bias of the 1x1 q/k/v projections (paper: none).
    """

    def __init__(self, channels: int, out_channels: int | None = None, block_size: int = 8, halo_size: int = 3,
                 num_heads: int = 8, dim_head: int = 16, stride: int = 1, qkv_bias: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.out_channels = check_positive_int("out_channels", out_channels if out_channels is not None else channels)
        self.block_size = check_positive_int("block_size", block_size)
        if isinstance(halo_size, bool) or not isinstance(halo_size, int) or halo_size < 0:
            raise ValueError(f"halo_size must be a non-negative int, got {halo_size!r}")
        self.halo_size = halo_size
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.dim_head = check_positive_int("dim_head", dim_head)
        self.stride = check_positive_int("stride", stride)
        check_divisible("out_channels", self.out_channels, "num_heads", num_heads)
        check_divisible("block_size", block_size, "stride", stride)
        self.dim_v = self.out_channels // num_heads
        self.scale = dim_head ** -0.5
        self.q = nn.Conv2d(channels, num_heads * dim_head, 1, bias=qkv_bias)
        self.kv = nn.Conv2d(channels, num_heads * (dim_head + self.dim_v), 1, bias=qkv_bias)
        n_rel = 2 * (block_size + halo_size) - 1
        self.rel_height = nn.Parameter(torch.randn(n_rel, dim_head) * dim_head ** -0.5)
        self.rel_width = nn.Parameter(torch.randn(n_rel, dim_head) * dim_head ** -0.5)
        self.init_derived_buffers()

    def derived_buffers(self) -> dict[str, torch.Tensor]:
        """``rel_idx``: the relative-position table row of every (query row, key row) pair."""
        return {"rel_idx": _rel_index(self.block_size, self.halo_size, self.stride)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        B, _, H, W = x.shape
        b, h, s, nh, dk, dv = self.block_size, self.halo_size, self.stride, self.num_heads, self.dim_head, self.dim_v
        win, bq = b + 2 * h, b // s
        nby, nbx = window_count(H, b), window_count(W, b)  # (integer ceil: sizes stay symbolic in a trace)
        ph, pw = nby * b - H, nbx * b - W
        # queries: one (b/s)^2 group per block -> (B*heads*blocks, (b/s)^2, dk)
        q = self.q(F.pad(x, (0, pw, 0, ph))[:, :, ::s, ::s])
        q = q.reshape(B, nh, dk, nby, bq, nbx, bq).permute(0, 1, 3, 5, 4, 6, 2)  # B, nh, nby, nbx, bq, bq, dk
        # keys/values of the haloed windows -> (B*heads*blocks, win^2, dk + dv)
        kv = F.pad(self.kv(x), (h, h + pw, h, h + ph)).unfold(2, win, b).unfold(3, win, b)
        kv = kv.reshape(B, nh, dk + dv, nby, nbx, win * win).permute(0, 1, 3, 4, 5, 2)
        k, v = kv.split([dk, dv], dim=-1)
        # relative logits q.r for the row and column offsets, broadcast to (bq^2, win^2)
        qs = q * self.scale
        rel_h = torch.einsum("...yxd,yrd->...yxr", qs, self.rel_height[self.rel_idx])
        rel_w = torch.einsum("...yxd,xrd->...yxr", qs, self.rel_width[self.rel_idx])
        # (the small terms made contiguous first: the broadcast sum then follows their order and reshapes as a
        # view, not a second copy of the map)
        bias = (rel_h.contiguous()[..., :, None] + rel_w.contiguous()[..., None, :]).reshape(
            B, nh, nby, nbx, bq * bq, win * win)
        # padded keys (outside the image) get no attention weight
        valid = F.pad(x.new_ones(1, 1, H, W, dtype=torch.bool), (h, h + pw, h, h + ph)).unfold(2, win, b).unfold(3, win, b)
        bias.masked_fill_(~valid.reshape(nby, nbx, 1, win * win), float("-inf"))  # (our own sum: in place)
        n = B * nh * nby * nbx
        q, k, v = q.reshape(n, bq * bq, dk), k.reshape(n, win * win, dk), v.reshape(n, win * win, dv)
        if (torch.is_grad_enabled() or transformed(q, k, v, bias) or q.device.type != "cpu"
                or torch.jit.is_tracing()):  # (CUDA: the memory-efficient kernel, no map; a trace: the
            # TorchScript ONNX exporter has no softmax(out=))
            out = sdpa(q[None], k[None], v[None],  # (4-d: ONNX's SDPA)
                       attn_mask=bias.reshape(1, n, bq * bq, win * win))
        else:  # on the CPU, one (queries x keys) map: the scores accumulate into the bias, the softmax in place
            # (SDPA's math path, which a float mask selects there, holds three)
            attn = bias.view(n, bq * bq, win * win).baddbmm_(q, k.transpose(1, 2), alpha=dk ** -0.5)
            out = torch.bmm(torch.softmax(attn, dim=-1, out=attn), v)
        out = out.reshape(B, nh, nby, nbx, bq, bq, dv)
        if is_channels_last(x):  # the one copy writes x's layout: (B, H, W, heads * dv), viewed (B, C, H, W)
            out = out.permute(0, 2, 4, 3, 5, 1, 6).reshape(B, nby * bq, nbx * bq, nh * dv).permute(0, 3, 1, 2)
        else:
            out = out.permute(0, 1, 6, 2, 4, 3, 5).reshape(B, nh * dv, nby * bq, nbx * bq)
        # cropped to the map (a copy only when the map was padded to whole blocks)
        return layout_like(crop_to(out, window_count(H, s), window_count(W, s)), x)
