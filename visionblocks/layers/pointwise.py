"""1x1 convolutions applied to vectors.  The excitation MLPs of SE-style gates and the fuse/select layers of
channel-attention blocks act on globally pooled (B, C) descriptors with 1x1 ``nn.Conv2d`` layers (their weights
load from the papers' code); on a 1x1 map a oneDNN convolution costs several times the matrix product, forward and
backward, so they run as matrix products here (Hu et al., Squeeze-and-Excitation Networks, CVPR 2018, arXiv
1709.01507; Li et al., Selective Kernel Networks, CVPR 2019, arXiv 1903.06586; and the gates after them).
A layer that is not plain (:func:`~visionblocks.layers.is_plain`: hooked, pruned, replaced) is called on the
1x1 map instead."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .plain import is_hooked, is_plain

__all__ = ["pointwise_linear", "pointwise_forward"]


def pointwise_linear(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv`` (a 1x1 ``nn.Conv2d`` without groups) applied to (..., C_in) vectors -> (..., C_out).

    The value of ``conv(x[..., None, None])[..., 0, 0]``, computed as ``F.linear`` on the (out, in) view of the
    weight: on a 1x1 map a oneDNN convolution costs several times the matrix product (forward and backward).
    A ``conv`` that is not plain (hooked, pruned, a subclass) is called on the (N, C_in, 1, 1) map.
    """
    if isinstance(conv, nn.Conv2d) and (conv.kernel_size != (1, 1) or conv.groups != 1):
        raise ValueError(f"pointwise_linear needs a 1x1 convolution without groups, got kernel_size="
                         f"{conv.kernel_size}, groups={conv.groups}")
    if is_plain(conv, nn.Conv2d):
        return F.linear(x, conv.weight.flatten(1), conv.bias)
    return conv(x.reshape(-1, x.shape[-1], 1, 1)).reshape(*x.shape[:-1], -1)


def pointwise_forward(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``module(x[:, :, None, None]).flatten(1)`` for a (B, C) ``x``, computed without a convolution on 1x1
    maps: a plain 1x1 ``nn.Conv2d`` (no groups) runs as :func:`pointwise_linear`, an unhooked ``nn.Sequential``
    whose forward is ``nn.Sequential``'s (such as ``ConvNormAct``) runs its layers in turn, and any other layer
    (a norm, an activation, a hooked or replaced layer) runs on the (B, C, 1, 1) view (so any layer gives the
    value it gives on a 1x1 map)."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward \
            and not is_hooked(module):
        for layer in module:
            x = pointwise_forward(x, layer)
        return x
    if is_plain(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1 \
            and module.padding in ((0, 0), "valid", "same"):
        return pointwise_linear(x, module)
    return module(x[:, :, None, None]).flatten(1)
