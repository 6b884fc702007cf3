"""op -> norm -> activation around a module that is not a convolution.

:class:`~visionblocks.layers.ConvNormAct` builds its operation from a convolution's signature (``conv_layer``);
an attention or multi-kernel block that replaces a convolution (halo attention, pyramid split attention...)
has arguments of its own, so it is built first and handed to :class:`NormAct`, which adds the same norm and
activation under the same names.
"""
from __future__ import annotations

import torch.nn as nn

from .activations import create_act
from .layer_type import LayerType
from .norm import create_norm

__all__ = ["NormAct"]


class NormAct(nn.Sequential):
    """``act(norm(op(x)))`` for a built ``op`` with ``out_channels`` output channels; norm/act may be ``None``.

    Sub-modules are named ``op``, ``bn`` and ``act``.
    """

    def __init__(self, op: nn.Module, out_channels: int, norm_layer: LayerType = "batchnorm",
                 act_layer: LayerType = "relu", inplace: bool = True):
        super().__init__()
        self.op = op
        self.bn = create_norm(norm_layer, out_channels)
        self.act = create_act(act_layer, inplace=inplace)
        self.out_channels = out_channels
