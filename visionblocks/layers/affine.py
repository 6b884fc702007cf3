"""ResMLP's affine transformation ``Aff_{a,b}(x) = Diag(a) x + b``, the per-channel scale and shift that
replaces LayerNorm (Touvron et al., ResMLP: Feedforward networks for image classification with data-efficient
training, TPAMI 2022, arXiv 2105.03404, eq. 1)."""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["Affine"]


class Affine(nn.Module):
    """``alpha * x + beta`` per channel (last axis); ``alpha`` starts at 1, ``beta`` at 0 (an identity)."""

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim > 1 and x.stride(-1) != 1 and x.shape[-1] > 1:
            # the tokens of a patch embedding are a transposed view ((B, C, N) in memory): ATen's addcmul, with
            # alpha and beta both constant along that innermost axis, runs its scalar loop (5.6x the product and
            # in-place sum at 8x196x384; the product's output is saved by nothing, so add_ is safe under autograd)
            return torch.mul(x, self.alpha).add_(self.beta)
        return torch.addcmul(self.beta, self.alpha, x)
