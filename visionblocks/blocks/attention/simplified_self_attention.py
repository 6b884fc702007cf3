"""Simplified self-attention: multi-head scaled dot-product attention without Q/K/V projections (the
"Simplified Self Attention" of the External-Attention-pytorch catalogue, a reduction of Vaswani et al.,
arXiv 1706.03762, https://arxiv.org/abs/1706.03762).

The tokens themselves are the queries, keys and values: with ``X`` split into h heads ``X_i`` of width
d = C / h, ``head_i = softmax(X_i X_i^T / sqrt(d)) X_i`` and ``Y = Concat(head_1, ..., head_h) W^O + b^O``;
only the output projection is learned.  The softmax attention is
``torch.nn.functional.scaled_dot_product_attention``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import check_divisible, check_nlc, check_positive_int, merge_heads, sdpa, split_heads
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["SimplifiedSelfAttention"]


@register_block("simplified_self_attention", family="attention", layout="nlc",
                paper="Simplified self-attention (no Q/K/V projections), after Vaswani et al., NeurIPS 2017",
                url="https://arxiv.org/abs/1706.03762",
                example=Example(args=(64,), kwargs={"num_heads": 8}, input_shape=(2, 49, 64)))
@validated()
class SimplifiedSelfAttention(nn.Module):
    """Projection-free multi-head self-attention followed by an output projection, (B, N, C) -> (B, N, C).

    Args:
        dim: token dimension C.
        num_heads: h; ``dim`` must be divisible by it (default 8, as multi-head attention).
        proj_bias: bias on the output projection.
        attn_drop: dropout on the attention weights (training only).
    """

    def __init__(self, dim: int, num_heads: int = 8, proj_bias: bool = True, attn_drop: float = 0.0):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_heads = check_positive_int("num_heads", num_heads)
        check_divisible("dim", dim, "num_heads", num_heads)
        self.attn_drop = float(attn_drop)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nlc(x, self.dim, type(self).__name__)
        h = split_heads(x, self.num_heads)
        out = sdpa(h, h, h, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj(merge_heads(out))
