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

    A view when the heads' memory is already (B, N, h, d) (``F.scaled_dot_product_attention``'s CPU kernels
    return that layout, so no copy is made), one copy otherwise.  While tracing (``torch.compile``,
    ``torch.export``, ``torch.onnx.export``) always the explicit contiguous copy: the ONNX exporter's
    decomposition of a masked ``scaled_dot_product_attention`` gives other strides than the fused kernel, so a
    ``view`` chosen at trace time would fail there."""
    b, h, n, d = x.shape
    t = x.transpose(1, 2)
    if t.is_contiguous() and not torch.compiler.is_compiling() and not torch.onnx.is_in_onnx_export():
        return t.view(b, n, h * d)
    return t.clone(memory_format=torch.contiguous_format).view(b, n, h * d)
