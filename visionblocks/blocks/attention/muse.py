"""Parallel Multi-Scale Attention, MUSE (Zhao et al., MUSE: Parallel Multi-Scale Attention for Sequence to
Sequence Learning, 2019, arXiv 1911.09483, https://arxiv.org/abs/1911.09483).

Self-attention and convolution run in parallel on a *shared* value projection (the paper's key point: both
branches work in one semantic space): with ``V = X W_V``,
``MUSE(X) = Attention(Q, K, V) W^O + sum_i softmax(alpha)_i PointwiseConv_i(DepthwiseConv_i(V))``,
where the depthwise-separable convolutions have odd kernel sizes along the sequence ("same" padding; the
depthwise part of a kernel-1 branch is the identity) and ``alpha`` are learned scalars whose softmax
selects among the scales ("dynamic gate").  Default kernel sizes (3, 15): the ``--attn_wide_kernels [3,15]
--dynamic_gate 1`` of every MUSE training script of the authors (lancopku/Prime).  Every parameter
(``alpha`` included) is created in ``__init__``.  The softmax attention is
``torch.nn.functional.scaled_dot_product_attention``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    check_divisible, check_nlc, check_odd, check_positive_int, merge_heads, sdpa, split_heads,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["MUSEAttention", "DepthwiseSeparableConv1d"]


class DepthwiseSeparableConv1d(nn.Module):
    """Depthwise (kernel k, "same" padding; identity for k = 1) then pointwise convolution on (B, C, N)."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.depthwise = (nn.Identity() if kernel_size == 1 else
                          nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels))
        self.pointwise = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


@register_block("muse", family="attention", layout="nlc",
                paper="Zhao et al., MUSE: Parallel Multi-Scale Attention for Sequence to Sequence Learning, 2019",
                url="https://arxiv.org/abs/1911.09483",
                example=Example(args=(64,), kwargs={"num_heads": 8}, input_shape=(2, 49, 64)))
@validated(kernel_sizes="odd_ints")
class MUSEAttention(nn.Module):
    """Multi-head self-attention plus dynamically weighted multi-scale convolutions of the same values,
    (B, N, C) -> (B, N, C).

    Args:
        dim: token dimension C.
        num_heads: h; ``dim`` must be divisible by it (default 8).
        kernel_sizes: the odd kernel sizes of the convolution branches (authors' scripts: (3, 15)).  With one
            kernel the softmax over the branch weights is 1 and ``alpha`` gets no gradient.
        qkv_bias: biases on the Q/K/V projections.
        attn_drop: dropout on the attention weights (training only).
    """

    def __init__(self, dim: int, num_heads: int = 8, kernel_sizes: tuple[int, ...] = (3, 15),
                 qkv_bias: bool = True, attn_drop: float = 0.0):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_heads = check_positive_int("num_heads", num_heads)
        check_divisible("dim", dim, "num_heads", num_heads)
        kernel_sizes = tuple(kernel_sizes)
        if not kernel_sizes:
            raise ValueError(f"kernel_sizes must be a non-empty sequence of odd ints, got {kernel_sizes}")
        for i, k in enumerate(kernel_sizes):
            check_odd(f"kernel_sizes[{i}]", check_positive_int(f"kernel_sizes[{i}]", k))
        self.attn_drop = float(attn_drop)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.convs = nn.ModuleList(DepthwiseSeparableConv1d(dim, k) for k in kernel_sizes)
        self.alpha = nn.Parameter(torch.ones(len(kernel_sizes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nlc(x, self.dim, type(self).__name__)
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        attn = merge_heads(sdpa(q, k, v, dropout_p=self.attn_drop if self.training else 0.0))
        v_seq = merge_heads(v).transpose(1, 2)                       # shared values as (B, C, N)
        weights = self.alpha.softmax(dim=0)
        conv = sum(weights[i] * branch(v_seq) for i, branch in enumerate(self.convs))
        return self.proj(attn) + conv.transpose(1, 2)
