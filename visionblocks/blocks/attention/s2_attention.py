"""S2-MLPv2 spatial-shift split attention (Yu et al., S2-MLPv2: Improved Spatial-Shift MLP Architecture for
Vision, arXiv 2108.01072).

The channels are expanded three times by a linear layer; the first third is spatially shifted in four
directions (its channel quarters move one pixel: +H, -H, +W, -W), the second third in the other grouping
(+W, -W, +H, -H), the last third is kept.  A split attention fuses the K = 3 branches (paper, Sec. 3.2)::

    a = sum_k sum_positions X_k                  # (C,)
    a_hat = GELU(a W1) W2                         # W1: C -> C, W2: C -> 3C, no bias
    a_bar = softmax over k of reshape(a_hat, (3, C))
    Y = (sum_k a_bar_k * X_k) W_out              # W_out: C -> C

A shift keeps the border row/column (the paper's in-place slice assignment ``x[1:] = x[:-1]`` leaves
``x[0]`` as it was), which this block reproduces without in-place writes.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    LayerType, check_divisible, check_nchw, check_positive_int, create_act, is_channels_last, token_linear,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["S2Attention", "SplitAttention", "spatial_shift"]


def _shift(x: torch.Tensor, dim: int, forward: bool) -> torch.Tensor:
    """Move ``x`` one step along ``dim`` (towards higher indices when ``forward``), keeping the border slice."""
    n = x.shape[dim]
    if n == 1:
        return x
    if forward:   # out[i] = x[i - 1] for i >= 1, out[0] = x[0]
        return torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)
    return torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)  # out[i] = x[i + 1], out[-1] = x[-1]


def spatial_shift(x: torch.Tensor, first_axis: int) -> torch.Tensor:
    """Shift the four channel quarters of (B, H, W, C) ``x``: quarters 1-2 along ``first_axis`` (+, -),
    quarters 3-4 along the other spatial axis (+, -)."""
    q = x.shape[-1] // 4
    second_axis = 3 - first_axis  # axes 1 (H) and 2 (W)
    parts = x.split(q, dim=-1)
    return torch.cat([_shift(parts[0], first_axis, True), _shift(parts[1], first_axis, False),
                      _shift(parts[2], second_axis, True), _shift(parts[3], second_axis, False)], dim=-1)


class SplitAttention(nn.Module):
    """Fuse K same-shape (B, H, W, C) branches with softmax-over-branches channel weights (no biases)."""

    def __init__(self, channels: int, k: int = 3, act_layer: LayerType = "gelu"):
        super().__init__()
        self.k = k
        self.mlp1 = nn.Linear(channels, channels, bias=False)
        self.act = create_act(act_layer)
        self.mlp2 = nn.Linear(channels, channels * k, bias=False)

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        # xs: (B, K, H, W, C)
        a = xs.sum((1, 2, 3))                                              # (B, C)
        a = self.mlp2(self.act(self.mlp1(a))).unflatten(-1, (self.k, -1))  # (B, K, C)
        a = a.softmax(dim=1)[:, :, None, None]                             # (B, K, 1, 1, C)
        return (xs * a).sum(1)


@register_block("s2_attention", family="attention", layout="nchw",
                paper="Yu et al., S2-MLPv2: Improved Spatial-Shift MLP Architecture for Vision, arXiv 2021",
                url="https://arxiv.org/abs/2108.01072",
                example=Example(args=(64,), input_shape=(2, 64, 14, 14)))
@validated()
class S2Attention(nn.Module):
    """Expand x3, spatially shift two of the three parts (two groupings of four directions), fuse with split
    attention, project.

    Args:
        channels: C; must be divisible by 4 (the four shift directions).
        act_layer: activation inside the split attention (paper: GELU).
    """

    def __init__(self, channels: int, act_layer: LayerType = "gelu"):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_divisible("channels", channels, "the 4 shift directions", 4)
        self.mlp1 = nn.Linear(channels, 3 * channels)
        self.split_attention = SplitAttention(channels, 3, act_layer)
        self.mlp2 = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        t = self.mlp1(x.permute(0, 2, 3, 1))                       # (B, H, W, 3C)
        t1, t2, t3 = t.chunk(3, dim=-1)
        ts = torch.stack([spatial_shift(t1, 1), spatial_shift(t2, 2), t3], dim=1)
        u = self.split_attention(ts)                                # (B, H, W, C)
        if is_channels_last(x):
            return self.mlp2(u).permute(0, 3, 1, 2)                 # (B, H, W, C) memory: x's layout
        # NCHW: the last projection written channels-first, W u^T + b (the same products, no transposing copy)
        return token_linear(u.flatten(1, 2).transpose(1, 2), self.mlp2).unflatten(2, x.shape[2:])
