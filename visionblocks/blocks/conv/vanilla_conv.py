"""Vanilla (dense) convolution (LeCun et al., Gradient-based learning applied to document recognition,
Proc. IEEE 1998; http://yann.lecun.com/exdb/publis/pdf/lecun-01a.pdf).

``y[b, o, i, j] = bias[o] + sum_{c, u, v} W[o, c, u, v] * x[b, c, s*i - p + u, s*j - p + v]``: a dense
cross-correlation whose weights are shared over positions.  This entry is ``torch.nn.Conv2d`` itself (no
re-implementation) with "same" padding by default, so that the output is ``ceil(H / stride)``.
"""
from __future__ import annotations

from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._plain import CheckedConv2d

__all__ = ["VanillaConv"]


@register_block("vanilla_conv", family="conv", layout="conv",
                paper="LeCun et al., Gradient-Based Learning Applied to Document Recognition, Proc. IEEE 1998",
                url="http://yann.lecun.com/exdb/publis/pdf/lecun-01a.pdf",
                example=Example(args=(16, 32, 3, 1), input_shape=(2, 16, 14, 14)))
@validated()
class VanillaConv(CheckedConv2d):
    """A dense KxK convolution (``nn.Conv2d``; ``padding=None`` is "same").

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: K (int or pair; odd unless ``padding`` is given).
        stride, padding, dilation, groups, bias, padding_mode: as in ``nn.Conv2d``.
    """
