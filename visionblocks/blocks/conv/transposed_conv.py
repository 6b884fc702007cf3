"""Transposed convolution (Zeiler et al., Deconvolutional Networks, CVPR 2010; Long et al., FCN, CVPR 2015;
Dumoulin & Visin, A guide to convolution arithmetic for deep learning, arXiv 1603.07285).

The adjoint of a strided convolution: ``<conv(y), z> = <y, conv_T(z)>``, i.e. zero-insertion of ``s - 1``
zeros between input pixels followed by a convolution with the flipped, channel-transposed kernel.  It is
learnable upsampling: output ``(H - 1) s - 2 p + d (K - 1) + output_padding + 1``.  This entry is
``torch.nn.ConvTranspose2d``; with ``padding=None`` the padding and output padding are chosen so that the
output is exactly ``(s H, s W)`` (K=4, s=2, p=1, the FCN/DCGAN 2x upsampler, by default).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import check_conv_channels, check_nchw, to_2tuple
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["TransposedConv"]


def _upsampled_shape(out_channels: int, stride: int):
    def shape(inputs):
        x = inputs[0]
        return (x.shape[0], out_channels, x.shape[2] * stride, x.shape[3] * stride)
    return shape


@register_block("transposed_conv", family="conv", layout="conv",
                paper="Zeiler et al., Deconvolutional Networks, CVPR 2010; Long et al., Fully Convolutional "
                      "Networks for Semantic Segmentation, CVPR 2015",
                url="https://arxiv.org/abs/1603.07285",
                example=Example(args=(16, 8, 4, 2), input_shape=(2, 16, 7, 7), output_shapes=_upsampled_shape(8, 2)))
@validated()
class TransposedConv(nn.ConvTranspose2d):
    """A learnable upsampling layer (``nn.ConvTranspose2d``).

    Args:
        in_channels, out_channels: channels in and out (divisible by ``groups``).
        kernel_size: K (default 4).
        stride: upsampling factor s (default 2).
        padding: ``None`` picks ``p = ceil((d (K - 1) + 1 - s) / 2)`` and the ``output_padding`` giving an
            output of exactly ``s * H`` (needs ``d (K - 1) + 1 >= s``); an int uses torch's formula with
            ``output_padding``.
        output_padding, groups, bias, dilation: as in ``nn.ConvTranspose2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=4, stride=2, padding=None,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1):
        check_conv_channels(in_channels, out_channels, groups)
        k, s, d = to_2tuple(kernel_size), to_2tuple(stride), to_2tuple(dilation)
        if padding is None:
            pad, opad = [], []
            for ki, si, di in zip(k, s, d):
                span = di * (ki - 1) + 1
                if span < si:
                    raise ValueError(f"padding=None needs dilation*(kernel_size-1)+1 >= stride, got kernel_size="
                                     f"{kernel_size}, stride={stride}, dilation={dilation}")
                p = (span - si + 1) // 2
                if si - span + 2 * p >= max(si, di):  # torch needs output_padding < max(stride, dilation)
                    raise ValueError(f"padding=None cannot give an output of exactly stride * H with kernel_size="
                                     f"{kernel_size}, stride={stride}, dilation={dilation} (stride - kernel span "
                                     "must be even when stride and dilation are 1); pass padding explicitly")
                pad.append(p)
                opad.append(si - span + 2 * p)
            padding, output_padding = tuple(pad), tuple(opad)
        super().__init__(in_channels, out_channels, k, s, padding, output_padding, groups, bias, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # no output_size argument: the size is fixed by the padding
        check_nchw(x, self.in_channels, type(self).__name__)
        return super().forward(x)
