"""UFO-ViT cross-normalized linear attention (Song, UFO-ViT: High Performance Linear Vision Transformer
without Softmax, 2021, arXiv 2109.14382, https://arxiv.org/abs/2109.14382).

Self-attention with the softmax removed and the product re-associated: per head,
``Y = XNorm(Q) XNorm(K^T V)`` and ``out = Concat(heads) W^O``, where ``XNorm(a) = gamma * a / ||a||_2`` is an l2
normalization along the last (channel) axis with a learnable scale ``gamma`` per head: each query is put on a
unit hypersphere of its d_k channels and each row of the d_k x d_v matrix ``K^T V`` on one of d_v channels
(hence "cross"-normalization).  ``K^T V`` costs O(N d^2): linear in the number of tokens.  The norm is clamped
at 1e-12 to avoid a division by zero (an all-zero row); ``gamma`` starts at 1.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import check_divisible, check_nlc, check_positive_int, merge_heads, split_heads
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["UFOAttention", "xnorm"]


def xnorm(a: torch.Tensor, gamma: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``gamma * a / ||a||_2`` along the last axis."""
    return a * (gamma / a.norm(dim=-1, keepdim=True).clamp_min(eps))


@register_block("ufo_attention", family="attention", layout="nlc",
                paper="Song, UFO-ViT: High Performance Linear Vision Transformer without Softmax, 2021",
                url="https://arxiv.org/abs/2109.14382",
                example=Example(args=(64,), kwargs={"num_heads": 8}, input_shape=(2, 49, 64)))
@validated()
class UFOAttention(nn.Module):
    """Softmax-free multi-head attention with cross-normalization, (B, N, C) -> (B, N, C).

    Args:
        dim: token dimension C.
        num_heads: h; ``dim`` must be divisible by it (default 8).
        qkv_bias: biases on the Q/K/V projections.
        proj_bias: bias on the output projection.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, proj_bias: bool = True):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_heads = check_positive_int("num_heads", num_heads)
        check_divisible("dim", dim, "num_heads", num_heads)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.gamma_q = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.gamma_kv = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nlc(x, self.dim, type(self).__name__)
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)   # (B, h, N, d) each
        kv = k.transpose(-2, -1) @ v                                              # (B, h, d, d)
        out = xnorm(q, self.gamma_q) @ xnorm(kv, self.gamma_kv)
        return self.proj(merge_heads(out))
