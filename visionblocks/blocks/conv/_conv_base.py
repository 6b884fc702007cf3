"""Shared pieces of the convolution family (not blocks, not registered): :class:`ConvBase`, the geometry of a convolution that holds
its own kernel; and :func:`check_fixed_conv_args`, used by the adapters that let a block without some of
``nn.Conv2d``'s arguments serve as ``ConvNormAct(conv_layer=...)``."""
from __future__ import annotations

import torch.nn as nn

from visionblocks.layers import conv_geometry, same_padding, to_2tuple

__all__ = ["ConvBase", "check_fixed_conv_args"]


class ConvBase(nn.Module):
    """Base of the convolutions that hold their own kernel (per-sample kernel banks, deformable convolutions).

    Validates the arguments with :func:`~visionblocks.layers.conv_geometry` (``padding=None``: "same") and keeps
    them as ``nn.Conv2d`` does: ``in_channels``, ``out_channels``, ``groups`` and the pairs ``kernel_size``,
    ``stride``, ``padding``, ``dilation``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding, dilation, groups: int):
        super().__init__()
        self.kernel_size, self.stride, padding, self.dilation = conv_geometry(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self.padding = to_2tuple(padding)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}")


def check_fixed_conv_args(block: str, kernel_size: int, padding=None, dilation=1, groups=1, bias=False) -> None:
    """``ValueError`` unless the ``nn.Conv2d`` arguments a block has no use for take the one value it implements:
    "same" padding (``None`` or ``kernel_size // 2``, what ``ConvNormAct`` passes), dilation 1, groups 1, no bias.
    An adapter passes only the arguments its block lacks."""
    fixed = (("padding", padding, (None, to_2tuple(same_padding(kernel_size))), "'same' (None)"),
             ("dilation", dilation, ((1, 1),), "1"), ("groups", groups, ((1, 1),), "1"),
             ("bias", bias, ((False, False),), "False"))
    for name, value, accepted, wanted in fixed:
        if (value if value is None else to_2tuple(value)) not in accepted:
            raise ValueError(f"{block} supports only {name}={wanted}, got {name}={value!r}")
