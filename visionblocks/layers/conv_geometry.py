"""Validation of a convolution's arguments, shared by every convolution-like block: positive channels and
groups, channels divisible by ``groups``, positive kernel/stride/dilation, and ``padding=None`` as "same"."""
from __future__ import annotations

from .checks import check_odd
from .helpers import check_divisible, check_positive_int, to_2tuple

__all__ = ["check_conv_channels", "conv_geometry", "square_conv_geometry", "same_padding"]


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the size at stride 1 (and gives ceil(H / stride) otherwise) for odd kernels."""
    return dilation * (kernel_size - 1) // 2


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


def square_conv_geometry(in_channels: int, out_channels: int, kernel_size, stride, groups: int = 1,
                         dilation: int = 1) -> tuple[int, int, int]:
    """:func:`conv_geometry` for a block whose convolutions have one square kernel and
    stride with "same" padding (odd kernel): validates the arguments and returns ``(kernel_size, stride,
    padding)`` as ints (a pair of equal values is accepted for the kernel and the stride)."""
    k, s, p, _ = conv_geometry(in_channels, out_channels, kernel_size, stride, None, dilation, groups)
    if k[0] != k[1] or s[0] != s[1]:
        raise ValueError(f"this block has square kernels and strides, got kernel_size={kernel_size}, stride={stride}")
    return k[0], s[0], p[0]
