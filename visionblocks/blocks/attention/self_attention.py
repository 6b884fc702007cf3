"""Multi-head scaled dot-product self-attention (Vaswani et al., Attention Is All You Need, NeurIPS 2017,
arXiv 1706.03762, https://arxiv.org/abs/1706.03762).

``MultiHead(X) = Concat(head_1, ..., head_h) W^O`` with ``head_i = softmax(Q_i K_i^T / sqrt(d_k)) V_i`` and
``Q_i = X W_i^Q, K_i = X W_i^K, V_i = X W_i^V``, ``d_k = d_v = d_model / h`` (paper: h = 8).  The paper's
projections are plain matrices (no biases; ``qkv_bias``/``proj_bias`` add them).  The three input projections
are computed by one fused ``Linear(dim, 3 dim)`` (the same parameters, one matrix multiplication), and the
softmax attention is ``torch.nn.functional.scaled_dot_product_attention``.
"""
from __future__ import annotations

import torch

from visionblocks.layers import MultiHeadAttention, check_nlc
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["SelfAttention"]


@register_block("self_attention", family="attention", layout="nlc",
                paper="Vaswani et al., Attention Is All You Need, NeurIPS 2017",
                url="https://arxiv.org/abs/1706.03762",
                example=Example(args=(64,), kwargs={"num_heads": 8}, input_shape=(2, 49, 64)))
@validated()
class SelfAttention(MultiHeadAttention):
    """Multi-head scaled dot-product self-attention over a token sequence (B, N, C) -> (B, N, C): the shared
    :class:`~visionblocks.layers.attention.MultiHeadAttention` with the paper's bias-free projections, as a block.

    Args:
        dim: token dimension d_model (= C).
        num_heads: h; ``dim`` must be divisible by it (paper: 8).
        qkv_bias: biases on the Q/K/V projections (paper: none).
        proj_bias: bias on the output projection W^O (paper: none).
        attn_drop: dropout on the attention weights (training only).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, proj_bias: bool = False,
                 attn_drop: float = 0.0):
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias, attn_drop=attn_drop)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        check_nlc(x, self.dim, type(self).__name__)
        return super().forward(x, attn_mask)
