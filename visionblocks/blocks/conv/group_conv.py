"""Group convolution (Krizhevsky et al., AlexNet, NeurIPS 2012; Xie et al., ResNeXt, CVPR 2017,
arXiv 1611.05431).

The channels are split into ``g`` groups convolved independently: output group ``k`` sees only input group
``k``, which divides parameters and multiply-adds by ``g``.  Equivalently, a dense convolution whose kernel
is block-diagonal over (output group, input group).  This entry is ``torch.nn.Conv2d(groups=g)``, with
AlexNet's two groups by default and "same" padding.
"""
from __future__ import annotations

from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._plain import CheckedConv2d

__all__ = ["GroupConv"]


@register_block("group_conv", family="conv", layout="conv",
                paper="Krizhevsky et al., ImageNet Classification with Deep Convolutional Neural Networks, NeurIPS 2012; "
                      "Xie et al., Aggregated Residual Transformations (ResNeXt), CVPR 2017",
                url="https://arxiv.org/abs/1611.05431",
                example=Example(args=(16, 32, 3, 1), kwargs={"groups": 2}, input_shape=(2, 16, 14, 14)))
@validated()
class GroupConv(CheckedConv2d):
    """A grouped KxK convolution (``nn.Conv2d(groups=groups)``).

    Args:
        in_channels, out_channels: channels in and out (both divisible by ``groups``, else ``ValueError``).
        kernel_size, stride: as in ``nn.Conv2d`` (padding "same" unless given).
        groups: g (AlexNet: 2; ResNeXt: 32; depthwise: ``in_channels``).
        padding, dilation, bias, padding_mode: as in ``nn.Conv2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 2, bias: bool = True, padding_mode: str = "zeros"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode)
