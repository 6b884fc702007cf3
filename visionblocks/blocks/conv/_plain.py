"""Shared base of the plain convolution entries (vanilla, group, pointwise, atrous): an ``nn.Conv2d`` with
"same" padding by default and the library's input check; and :func:`conv_geometry` /
:func:`check_conv_channels`, the validation of a convolution's arguments that the convolution-like blocks of
the family share.  Not a block by itself (not registered)."""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import check_divisible, check_nchw, check_odd, check_positive_int, same_padding, to_2tuple


def check_conv_channels(in_channels: int, out_channels: int, groups: int) -> None:
    """Positive channel counts and groups, both channel counts divisible by ``groups``."""
    check_positive_int("in_channels", in_channels)
    check_positive_int("out_channels", out_channels)
    check_positive_int("groups", groups)
    check_divisible("in_channels", in_channels, "groups", groups)
    check_divisible("out_channels", out_channels, "groups", groups)


def conv_geometry(in_channels: int, out_channels: int, kernel_size, stride, padding, dilation, groups: int):
    """Validate the arguments of a convolution (positive channels/groups, channels divisible by ``groups``,
    positive kernel/stride/dilation) and return ``(kernel_size, stride, padding, dilation)``, kernel, stride
    and dilation as pairs; ``padding=None`` means "same" (``dilation * (k - 1) / 2``, output
    ``ceil(H / stride)``; odd kernels only) and becomes a pair, any other padding is returned as given."""
    check_conv_channels(in_channels, out_channels, groups)
    k, s, d = to_2tuple(kernel_size), to_2tuple(stride), to_2tuple(dilation)
    for name, v in (("kernel_size", k), ("stride", s), ("dilation", d)):
        for t in v:
            check_positive_int(name, t)
    if padding is None:
        for t in k:
            check_odd("kernel_size", t, "'same' padding, padding=None; pass padding explicitly otherwise")
        padding = (same_padding(k[0], d[0]), same_padding(k[1], d[1]))
    return k, s, padding, d


class CheckedConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose ``padding=None`` means "same" (``dilation * (k - 1) / 2``, output
    ``ceil(H / stride)``; odd kernels only) and whose forward validates the input first."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
        k, stride, padding, d = conv_geometry(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        super().__init__(in_channels, out_channels, k, stride, padding, d, groups, bias, padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        return super().forward(x)
