"""op -> norm -> activation, the unit most blocks are made of."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from .activations import create_act
from .conv_geometry import same_padding
from .layer_type import LayerType
from .norm import get_norm_layer

__all__ = ["ConvNormAct"]


class ConvNormAct(nn.Sequential):
    """``act(norm(conv(x)))`` with "same" padding by default; norm/act may be ``None`` (identity).

    ``conv_layer`` builds the operation (default ``nn.Conv2d``), called as ``conv_layer(in_channels,
    out_channels, kernel_size, stride=..., padding=..., dilation=..., groups=..., bias=..., **conv_kwargs)``;
    any convolution-like block with that signature (a dynamic, involution or octave convolution...) gets its
    norm and activation here instead of in a wrapper of its own.  Sub-modules are named ``conv``, ``bn`` and
    ``act`` so state dicts read like the papers' code.  ``bias=None`` gives the convolution a bias only when
    there is no norm.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, dilation: int = 1, groups: int = 1, bias: bool | None = None,
                 norm_layer: LayerType = "batchnorm", act_layer: LayerType = "relu", inplace: bool = True,
                 conv_layer: Callable[..., nn.Module] | None = None, **conv_kwargs):
        norm_cls = get_norm_layer(norm_layer)
        if bias is None:
            bias = norm_cls is nn.Identity
        if padding is None:
            padding = same_padding(kernel_size, dilation)
        super().__init__()
        conv_layer = conv_layer or nn.Conv2d
        self.conv = conv_layer(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                               dilation=dilation, groups=groups, bias=bias, **conv_kwargs)
        self.bn = nn.Identity() if norm_cls is nn.Identity else norm_cls(out_channels)
        self.act = create_act(act_layer, inplace=inplace)
        self.in_channels, self.out_channels = in_channels, out_channels
