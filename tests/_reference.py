"""Plain reference formulas shared by the tests (independent of the library's code)."""
from __future__ import annotations

import torch


def bn_eval(x: torch.Tensor, bn) -> torch.Tensor:
    """Eval-mode BatchNorm written out over dim 1: ``gamma (x - mean) / sqrt(var + eps) + beta``."""
    sh = (1, -1) + (1,) * (x.ndim - 2)
    return (x - bn.running_mean.view(sh)) / torch.sqrt(bn.running_var.view(sh) + bn.eps) * bn.weight.view(sh) \
        + bn.bias.view(sh)
