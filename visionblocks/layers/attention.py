"""Multi-head scaled dot-product attention with fused Q/K/V and output projections (Vaswani et al., Attention
Is All You Need, NeurIPS 2017, arXiv 1706.03762): the attention layer of the transformer blocks (MobileViT,
CoAtNet, the ``self_attention`` block, VOLO's class attention...)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch.nn.attention import SDPBackend, sdpa_kernel

from .heads import merge_heads, split_heads
from .helpers import check_divisible, check_positive_int, transformed

__all__ = ["MultiHeadAttention", "sdpa"]


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
         dropout_p: float = 0.0, scale: float | None = None) -> torch.Tensor:
    """``F.scaled_dot_product_attention``, the library's one call of it.  On the CPU under forward-mode AD or a
    ``torch.func`` transform (``jvp``, ``jacfwd``, ``hessian``) its math path: torch's fused CPU kernel has no
    forward derivative.  (Nor has it a double backward: for a gradient of a gradient through softmax attention
    on the CPU, run under ``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)``, which this call obeys.)"""
    if q.device.type == "cpu" and transformed(q, k, v, attn_mask):
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)


class MultiHeadAttention(nn.Module):
    """``proj(Concat_i softmax(Q_i K_i^T / sqrt(d) + mask) V_i)`` over (B, N, dim) tokens -> (B, N, out_dim).

    ``Q, K, V`` come from one fused ``Linear(dim, 3 out_dim)`` (the same parameters as three projections, one
    matrix product), split into ``num_heads`` heads of ``d = out_dim / num_heads``; the attention runs in
    ``F.scaled_dot_product_attention``, which takes ``attn_mask`` (boolean, True = attend, or an additive bias
    broadcastable to (B, h, N, N)).

    Args:
        dim: input token dimension.
        num_heads: h; ``out_dim`` must be divisible by it.
        out_dim: width of queries, keys, values and output (default ``dim``).
        qkv_bias, proj_bias: biases of the input and output projections.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout on the output (``nn.Identity`` when 0).
    """

    def __init__(self, dim: int, num_heads: int = 8, out_dim: int | None = None, qkv_bias: bool = True,
                 proj_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_heads = check_positive_int("num_heads", num_heads)
        out_dim = dim if out_dim is None else check_positive_int("out_dim", out_dim)
        check_divisible("dim" if out_dim == dim else "out_dim", out_dim, "num_heads", num_heads)
        self.out_dim, self.head_dim = out_dim, out_dim // num_heads
        self.attn_drop = float(attn_drop)
        self.qkv = nn.Linear(dim, 3 * out_dim, bias=qkv_bias)
        self.proj = nn.Linear(out_dim, out_dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        y = sdpa(q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(merge_heads(y)))
