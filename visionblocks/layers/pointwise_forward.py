"""A pointwise unit (1x1 convolutions, norms, activations: a ``ConvNormAct`` with a 1x1 kernel, a plain 1x1
``nn.Conv2d``) applied to globally pooled (B, C) vectors, its 1x1 convolutions run as matrix products
(:func:`~visionblocks.layers.pooled_linear.pointwise_linear`).  The fuse and select layers of channel-attention
blocks (Li et al., Selective Kernel Networks, CVPR 2019, arXiv 1903.06586, and others) keep their
convolutional parameters (the papers' code) and run this way on their pooled descriptors."""
from __future__ import annotations

import torch
import torch.nn as nn

from .pooled_linear import pointwise_linear

__all__ = ["pointwise_forward"]


def pointwise_forward(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``module(x[:, :, None, None]).flatten(1)`` for a (B, C) ``x``, computed without a convolution on 1x1
    maps: a 1x1 ``nn.Conv2d`` (no groups) runs as :func:`pointwise_linear`, an ``nn.Sequential`` (such as
    ``ConvNormAct``) runs its layers in turn, and any other layer (a norm, an activation) runs on the
    (B, C, 1, 1) view (so any layer gives the value it gives on a 1x1 map)."""
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = pointwise_forward(x, layer)
        return x
    if isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1 \
            and module.padding in ((0, 0), "valid", "same"):
        return pointwise_linear(x, module)
    return module(x[:, :, None, None]).flatten(1)
