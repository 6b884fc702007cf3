"""External Attention (Guo et al., Beyond Self-attention: External Attention using Two Linear Layers for
Visual Tasks, TPAMI 2022, arXiv 2105.02358, https://arxiv.org/abs/2105.02358).

Algorithm 1 of the paper: ``F = F W_q`` (query linear), ``A = Norm(F M_k^T)``, ``F_out = A M_v`` with two
external memories ``M_k, M_v`` of S units (paper: S = 64), implemented as bias-free linear layers.  ``Norm`` is
the double normalization: a softmax over the tokens (``alpha_ij = softmax_i(a_ij)``, dim N), then an l1
normalization over the memory units (``alpha_ij / sum_j alpha_ij``, dim S); the 1e-9 in that division follows
the authors' code (MenghaoGuo/EANet).  Linear in the number of tokens N.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import check_nlc, check_positive_int, is_plain
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["ExternalAttention"]


@register_block("external_attention", family="attention", layout="nlc",
                paper="Guo et al., Beyond Self-attention: External Attention using Two Linear Layers for Visual "
                      "Tasks, TPAMI 2022",
                url="https://arxiv.org/abs/2105.02358",
                example=Example(args=(64,), kwargs={"memory_units": 64}, input_shape=(2, 49, 64)))
@validated()
class ExternalAttention(nn.Module):
    """Attention of the tokens to two learned external memories, (B, N, C) -> (B, N, C).

    Args:
        dim: token dimension C.
        memory_units: S, the number of memory units (paper: 64).
        query_bias: bias of the query linear layer (the memories themselves have no bias).
        eps: added to the l1 normaliser (authors' code: 1e-9).
    """

    def __init__(self, dim: int, memory_units: int = 64, query_bias: bool = True, eps: float = 1e-9):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.memory_units = check_positive_int("memory_units", memory_units)
        self.eps = float(eps)
        self.query = nn.Linear(dim, dim, bias=query_bias)
        self.mk = nn.Linear(dim, memory_units, bias=False)
        self.mv = nn.Linear(memory_units, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nlc(x, self.dim, type(self).__name__)
        # M_k(W_q x + b_q) with the two linear maps composed first: the same logits (exact reassociation,
        # same parameters and gradients) for C*S instead of C^2 + C*S multiply-adds per token
        if is_plain(self.query, nn.Linear) and is_plain(self.mk, nn.Linear):
            wk = self.mk.weight
            bias = None if self.query.bias is None else wk @ self.query.bias
            logits = F.linear(x, wk @ self.query.weight, bias)
        else:  # hooked or replaced layers are called
            logits = self.mk(self.query(x))
        attn = logits.softmax(dim=1)                                # softmax over the N tokens
        attn = attn / (attn.sum(dim=2, keepdim=True) + self.eps)    # l1 over the S memory units
        return self.mv(attn)
