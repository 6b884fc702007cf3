"""Pointwise (1x1) convolution (Lin, Chen & Yan, Network In Network, ICLR 2014, arXiv 1312.4400).

``y[b, o, i, j] = bias[o] + sum_c W[o, c] * x[b, c, s*i, s*j]``: a per-pixel linear map across channels
(channel mixing, bottleneck reduction/expansion), i.e. ``nn.Linear`` over the channel axis.  This entry is
``torch.nn.Conv2d(kernel_size=1)``.
"""
from __future__ import annotations

from visionblocks.layers import to_2tuple
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._plain import CheckedConv2d

__all__ = ["PointwiseConv"]


@register_block("pointwise_conv", family="conv", layout="conv",
                paper="Lin, Chen & Yan, Network In Network, ICLR 2014", url="https://arxiv.org/abs/1312.4400",
                example=Example(args=(16, 32, 1, 1), input_shape=(2, 16, 14, 14)))
@validated()
class PointwiseConv(CheckedConv2d):
    """A 1x1 convolution.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: must be 1 (kept for the ``nn.Conv2d`` argument order).
        stride: subsampling (a strided 1x1 takes every s-th pixel, output ``ceil(H / s)``).
        groups, bias: as in ``nn.Conv2d``.
        padding, dilation: accepted for ``nn.Conv2d``'s signature (``ConvNormAct(conv_layer=PointwiseConv)``):
            padding must be 0 (or ``None``), dilation has no effect on a 1x1 kernel.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=1, stride=1, groups: int = 1, bias: bool = True,
                 padding=0, dilation=1):
        if to_2tuple(kernel_size) != (1, 1):
            raise ValueError(f"a pointwise convolution has kernel_size 1, got {kernel_size}")
        if padding is not None and to_2tuple(padding) != (0, 0):
            raise ValueError(f"a pointwise convolution has no padding, got padding={padding!r}")
        super().__init__(in_channels, out_channels, 1, stride, 0, dilation, groups, bias)
