"""Shared base of the plain convolution entries (vanilla, group, pointwise, atrous): an ``nn.Conv2d`` with
"same" padding by default and the library's input check.  Not a block by itself (not registered)."""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import check_divisible, check_nchw, check_positive_int, to_2tuple


class CheckedConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose ``padding=None`` means "same" (``dilation * (k - 1) / 2``, output
    ``ceil(H / stride)``; odd kernels only) and whose forward validates the input first."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("groups", groups)
        check_divisible("in_channels", in_channels, "groups", groups)
        check_divisible("out_channels", out_channels, "groups", groups)
        k, d = to_2tuple(kernel_size), to_2tuple(dilation)
        for name, v in (("kernel_size", k), ("stride", to_2tuple(stride)), ("dilation", d)):
            for t in v:
                check_positive_int(name, t)
        if padding is None:
            if k[0] % 2 == 0 or k[1] % 2 == 0:
                raise ValueError(f"'same' padding (padding=None) needs an odd kernel_size, got {kernel_size}; "
                                 "pass padding explicitly")
            padding = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
        super().__init__(in_channels, out_channels, k, stride, padding, d, groups, bias, padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        return super().forward(x)
