"""Splitting channels into attention heads and merging them back: the (B, N, C) <-> (B, h, N, C / h) reshapes
of multi-head attention (Vaswani et al., Attention Is All You Need, NeurIPS 2017, arXiv 1706.03762)."""
from __future__ import annotations

import torch

__all__ = ["split_heads", "merge_heads"]


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, C) -> (B, h, N, C / h), a view where the strides allow."""
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, h, N, d) -> (B, N, h d).

    The explicit contiguous copy (one copy, as ``reshape`` of the transposed view would make) keeps
    ``torch.onnx.export``'s decomposition of ``scaled_dot_product_attention`` with a mask valid: the
    decomposed output has other strides than the fused kernel's, so a ``view`` chosen at trace time fails."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).clone(memory_format=torch.contiguous_format).view(b, n, h * d)
