"""A 1x1 convolution applied to vectors: the excitation MLPs of SE-style gates act on globally pooled (B, C)
descriptors with 1x1 ``nn.Conv2d`` layers (their weights load from the papers' code), and run them as matrix
products (Hu et al., Squeeze-and-Excitation Networks, CVPR 2018, arXiv 1709.01507, and the gates after it)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["pointwise_linear"]


def pointwise_linear(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv`` (a 1x1 ``nn.Conv2d`` without groups) applied to (..., C_in) vectors -> (..., C_out).

    The value of ``conv(x[..., None, None])[..., 0, 0]``, computed as ``F.linear`` on the (out, in) view of the
    weight: on a 1x1 map a oneDNN convolution costs several times the matrix product (forward and backward).
    """
    if conv.kernel_size != (1, 1) or conv.groups != 1:
        raise ValueError(f"pointwise_linear needs a 1x1 convolution without groups, got kernel_size="
                         f"{conv.kernel_size}, groups={conv.groups}")
    return F.linear(x, conv.weight.flatten(1), conv.bias)
