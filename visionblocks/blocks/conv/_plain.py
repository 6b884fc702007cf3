"""Shared base of the plain convolution entries (vanilla, group, pointwise, atrous): an ``nn.Conv2d`` with
"same" padding by default and the library's input check.  Not a block by itself (not registered)."""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import check_nchw, conv_geometry
from visionblocks.layers.validate import check_conv_input

__all__ = ["CheckedConv2d"]


class CheckedConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose ``padding=None`` means "same" (``dilation * (k - 1) / 2``, output
    ``ceil(H / stride)``; odd kernels only) and whose forward validates the input first."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
        k, stride, padding, d = conv_geometry(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        super().__init__(in_channels, out_channels, k, stride, padding, d, groups, bias, padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        check_conv_input(x, self.kernel_size, self.padding, self.dilation, type(self).__name__)
        return super().forward(x)
