"""Conv -> norm -> activation, the unit most blocks are made of."""
from __future__ import annotations

import torch.nn as nn

from .activations import create_act
from .norm import get_norm_layer


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the size at stride 1 (and gives ceil(H / stride) otherwise) for odd kernels."""
    return dilation * (kernel_size - 1) // 2


class ConvNormAct(nn.Sequential):
    """``act(norm(conv(x)))`` with "same" padding by default; norm/act may be ``None`` (identity).

    Sub-modules are named ``conv``, ``bn`` and ``act`` so state dicts read like the papers' code.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, dilation: int = 1, groups: int = 1, bias: bool | None = None,
                 norm_layer="batchnorm", act_layer="relu", inplace: bool = True):
        norm_cls = get_norm_layer(norm_layer)
        if bias is None:
            bias = norm_cls is nn.Identity
        if padding is None:
            padding = same_padding(kernel_size, dilation)
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias)
        self.bn = nn.Identity() if norm_cls is nn.Identity else norm_cls(out_channels)
        self.act = create_act(act_layer, inplace=inplace)
        self.in_channels, self.out_channels = in_channels, out_channels
