"""Atrous (dilated) convolution (Yu & Koltun, Multi-Scale Context Aggregation by Dilated Convolutions,
ICLR 2016, arXiv 1511.07122; Chen et al., DeepLab, arXiv 1606.00915).

``y[b, o, i, j] = bias[o] + sum_{c, u, v} W[o, c, u, v] * x[b, c, s*i - p + d*u, s*j - p + d*v]``: the kernel
taps are spaced ``d`` apart, so the receptive field is ``d (K - 1) + 1`` with K^2 weights; the padding
``d (K - 1) / 2`` keeps the size.  Equal to a convolution with the zero-inserted kernel of size
``d (K - 1) + 1``.  This entry is ``torch.nn.Conv2d(dilation=d)`` with rate 2 by default.
"""
from __future__ import annotations

from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._plain import CheckedConv2d

__all__ = ["AtrousConv"]


@register_block("atrous_conv", family="conv", layout="conv",
                paper="Yu & Koltun, Multi-Scale Context Aggregation by Dilated Convolutions, ICLR 2016",
                url="https://arxiv.org/abs/1511.07122",
                example=Example(args=(16, 32, 3, 1), kwargs={"dilation": 2}, input_shape=(2, 16, 14, 14)))
@validated()
class AtrousConv(CheckedConv2d):
    """A dilated KxK convolution with "same" padding ``dilation * (K - 1) / 2``.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size, stride: as in ``nn.Conv2d``.
        dilation: the rate d (default 2; DeepLab's ASPP uses 6, 12, 18).
        padding, groups, bias, padding_mode: as in ``nn.Conv2d`` (padding "same" unless given).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, dilation=2, padding=None,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode)
