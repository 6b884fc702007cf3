"""The relative-attention transformer block of CoAtNet: Marrying Convolution and Attention for All Data
Sizes (Dai et al., NeurIPS 2021, arXiv 2106.04803).

Pre-norm transformer block over the H x W tokens of a feature map, whose attention adds a learned,
input-independent relative bias to the logits (Eq. 3 of the paper, "pre-normalisation relative attention"):

    y_i = sum_j softmax_j( x_i^T x_j / sqrt(d) + w_{i-j} ) x_j      (x: per-head queries/keys/values)
    x <- x + Proj(Attention(LN(x)));   x <- x + FFN(LN(x)),   FFN = Linear(C, 4C) -> GELU -> Linear(4C, C)

``w`` is a table of ``(2a - 1)(2b - 1)`` scalars per head, built for a reference size ``a x b`` (the stage's
feature size at the paper's 224 input, e.g. 14x14 for S3, 7x7 for S4).  At call time the bias for an
``H x W`` map is gathered from it: when ``H <= a`` and ``W <= b`` the central ``(2H-1)(2W-1)`` part of the
table holds every needed offset exactly; along an axis where the map is larger, the table is bicubically
interpolated to the needed ``2H - 1`` (resp. ``2W - 1``) entries, which is what the paper does when it
fine-tunes a model at a higher resolution.  Attention runs in ``F.scaled_dot_product_attention`` with the
bias as additive mask.

With ``stride=2`` the block is the first of a CoAtNet transformer stage (Sec. 2.3):
``x <- Proj(Pool(x)) + Attention(Pool(LN(x)))`` (3x3/2 max pooling, 1x1 projection to ``out_channels``),
followed by the FFN sub-block.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (
    DropPath, LayerType, Mlp, MultiHeadAttention, check_divisible, check_nchw, check_positive_int, to_2tuple,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["CoAtNetTransformerBlock", "RelativeAttention", "relative_position_bias"]


def relative_position_bias(table: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(heads, H*W, H*W) bias ``B[h, i, j] = table[h, yi - yj + H - 1, xi - xj + W - 1]`` for an H x W map.

    ``table`` is (heads, 2a - 1, 2b - 1); it is centre-cropped to (2H - 1, 2W - 1) where the map is smaller
    and bicubically interpolated along an axis where it is larger.
    """
    nh, th, tw = table.shape
    need_h, need_w = 2 * H - 1, 2 * W - 1
    if need_h > th or need_w > tw:
        table = F.interpolate(table[None], size=(max(need_h, th), max(need_w, tw)), mode="bicubic",
                              align_corners=False)[0]
        th, tw = table.shape[-2:]
    # the centre crop is an offset of the indices (oh, ow; not a sliced view of the table, whose contiguity a
    # trace with symbolic sizes would decide on the example: a guard refusing the size where the crop is empty)
    oh, ow = (th - need_h) // 2, (tw - need_w) // 2
    # separable gather: B[h, (yi, xi), (yj, xj)] = table[h, ry[yi, yj], rx[xi, xj]] with the (H, H) row- and
    # (W, W) column-offset indices broadcast against each other (views), so that the only N^2-sized tensor
    # made is the bias itself, already in (heads, H, W, H, W) order (no N^2 integer index, no permute copy)
    ys, xs = torch.arange(H, device=table.device), torch.arange(W, device=table.device)
    ry = ys[:, None] - ys[None, :] + (H - 1 + oh)  # (H, H): yi - yj + H - 1 in the cropped table
    rx = xs[:, None] - xs[None, :] + (W - 1 + ow)  # (W, W): xi - xj + W - 1
    return table[:, ry[:, None, :, None], rx[None, :, None, :]].reshape(nh, H * W, H * W)


class RelativeAttention(MultiHeadAttention):
    """Multi-head self-attention over the (B, N, C) tokens of an H x W map with CoAtNet's relative bias added to
    the logits (the bias is the attention's additive mask)."""

    def __init__(self, dim: int, out_dim: int, dim_head: int = 32, rel_size=(14, 14), qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        check_divisible("out_channels", out_dim, "dim_head", dim_head)
        super().__init__(dim, out_dim // dim_head, out_dim, qkv_bias=qkv_bias, attn_drop=attn_drop,
                         proj_drop=proj_drop)
        a, b = rel_size
        self.rel_table = nn.Parameter(torch.randn(self.num_heads, 2 * a - 1, 2 * b - 1) * 0.02)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        bias = relative_position_bias(self.rel_table, H, W).to(x.dtype)
        return super().forward(x, attn_mask=bias[None])


@register_block("coatnet_attention", family="attention", layout="nchw",
                paper="Dai et al., CoAtNet: Marrying Convolution and Attention for All Data Sizes, NeurIPS 2021",
                url="https://arxiv.org/abs/2106.04803",
                example=Example(args=(64,), kwargs={"dim_head": 32, "mlp_ratio": 4.0, "rel_size": 14},
                                input_shape=(2, 64, 14, 14)),
                dynamic_export_unsupported=("its relative-position table is cropped for maps up to rel_size and "
                                            "interpolated for larger ones, a branch on the size: an export holds H, W "
                                            "<= rel_size (guarded), not any size"))
@validated()
class CoAtNetTransformerBlock(nn.Module):
    """CoAtNet's pre-norm relative-attention transformer block, on (B, C, H, W).

    Args:
        channels: input channels C.
        out_channels: output channels (default C; differs only with ``stride=2``), divisible by ``dim_head``.
        dim_head: attention head size (paper: 32); heads = out_channels / dim_head.
        mlp_ratio: FFN expansion (paper: 4).
        rel_size: the (a, b) map size the relative-bias table is built for (paper: the stage's feature size,
            14 for S3 and 7 for S4 at 224x224); other sizes crop or interpolate it (see module docstring).
        stride: 1, or 2 for a stage's first block (pooled input, projected shortcut).
        act_layer: FFN activation (paper: GELU).
        drop_path, attn_drop, proj_drop: stochastic depth and dropouts.
    """

    def __init__(self, channels: int, out_channels: int | None = None, dim_head: int = 32, mlp_ratio: float = 4.0,
                 rel_size=14, stride: int = 1, act_layer: LayerType = "gelu", drop_path: float = 0.0, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.out_channels = check_positive_int("out_channels", out_channels if out_channels is not None else channels)
        check_positive_int("dim_head", dim_head)
        check_divisible("out_channels", self.out_channels, "dim_head", dim_head)
        rel_size = to_2tuple(rel_size)
        for r in rel_size:
            check_positive_int("rel_size", r)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1 and self.out_channels != channels:
            raise ValueError(f"out_channels ({self.out_channels}) must equal channels ({channels}) when stride is 1")
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {mlp_ratio}")
        self.stride = stride
        out = self.out_channels
        self.pool = nn.MaxPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.shortcut = nn.Conv2d(channels, out, 1) if stride == 2 else nn.Identity()
        self.norm1 = nn.LayerNorm(channels)
        self.attn = RelativeAttention(channels, out, dim_head, rel_size, attn_drop=attn_drop, proj_drop=proj_drop)
        self.norm2 = nn.LayerNorm(out)
        self.mlp = Mlp(out, int(out * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        # Pool(LN(x)): the norm is per position, so it commutes with channels-last permutes
        y = self.pool(self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        B, _, H, W = y.shape
        shortcut = self.shortcut(self.pool(x)).flatten(2).transpose(1, 2)
        t = shortcut + self.drop_path(self.attn(y.flatten(2).transpose(1, 2), H, W))
        t = t + self.drop_path(self.mlp(self.norm2(t)))
        return t.transpose(1, 2).reshape(B, self.out_channels, H, W)
