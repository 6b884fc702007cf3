"""HetConv: Heterogeneous Kernel-Based Convolutions (Singh et al., CVPR 2019, arXiv 1903.04120).

Inside every filter, ``1/P`` of the input channels get a ``K x K`` kernel and the other ``(1 - 1/P)`` a ``1 x 1``
kernel.  A filter thus costs ``(C_in/P * K^2 + C_in (1 - 1/P))`` multiply-adds per output pixel instead of
``C_in K^2`` (paper Eq. 3-4).  We compute it as a ``K x K`` convolution with ``groups=P`` (the ``K x K`` kernels)
plus a ``1 x 1`` convolution over the remaining input channels of each filter (no weight is stored for the
positions taken by a ``K x K`` kernel).

Layout: filter ``o`` belongs to group ``g = o // (C_out/P)`` and has its ``K x K`` kernels on the contiguous
input block ``g``.  The paper draws the ``K x K`` positions shifted by one channel from one filter to the next
(filter ``o`` on the channels ``i = o mod P``, mod ``P``); the two layouts are the same layer up to a fixed
permutation of the input channels and one of the output channels (the block form is the efficient one the
paper's implementation note describes), which ``tests/test_conv_het.py`` checks.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import DerivedBuffers, square_conv_geometry, check_divisible, check_nchw, check_positive_int
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._conv_base import check_fixed_conv_args

__all__ = ["HetConv"]


@register_block("het_conv", family="conv", layout="conv",
                paper="Singh et al., HetConv: Heterogeneous Kernel-Based Convolutions for Deep CNNs, CVPR 2019",
                url="https://arxiv.org/abs/1903.04120",
                example=Example(args=(64, 64, 3), kwargs={"part": 4}, input_shape=(2, 64, 14, 14)))
@validated()
class HetConv(DerivedBuffers, nn.Module):
    """Heterogeneous-kernel convolution.

    Args:
        in_channels, out_channels: as ``nn.Conv2d``; both divisible by ``part``.
        kernel_size: K of the heterogeneous kernels (paper: 3), odd.
        stride: stride of both kernel kinds (output ``ceil(H / stride)``).
        part: P, the fraction ``1/P`` of each filter's input channels that get a ``K x K`` kernel (the paper
            sweeps P; our default P=4 is the setting of its ImageNet ResNets; P=1 is a plain convolution).
        bias: add a bias.

    :meth:`from_conv_args` builds it from ``nn.Conv2d``'s arguments, for ``ConvNormAct(conv_layer=...)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, part: int = 4,
                 bias: bool = False):
        super().__init__()
        kernel_size, self.stride, padding = square_conv_geometry(in_channels, out_channels, kernel_size, stride)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.part = check_positive_int("part", part)
        check_divisible("in_channels", in_channels, "part", part)
        check_divisible("out_channels", out_channels, "part", part)
        self.gwc = nn.Conv2d(in_channels, out_channels, kernel_size, self.stride, padding, groups=part, bias=bias)
        n_pw = in_channels - in_channels // part
        self.pwc_weight = nn.Parameter(torch.empty(out_channels, n_pw)) if n_pw else None
        if n_pw:
            nn.init.kaiming_uniform_(self.pwc_weight, a=5 ** 0.5)
        self.init_derived_buffers()

    def derived_buffers(self) -> dict[str, torch.Tensor]:
        """``pwc_index``, (out, in - in/part): the 1x1 input channels of every filter, all channels outside its
        K x K block, in increasing order."""
        blk_in, blk_out = self.in_channels // self.part, self.out_channels // self.part
        chans = torch.arange(self.in_channels)
        outside = (chans[None, :] // blk_in) != (torch.arange(self.out_channels)[:, None] // blk_out)
        return {"pwc_index": chans.expand(self.out_channels, -1)[outside].view(self.out_channels, -1)}

    @classmethod
    def from_conv_args(cls, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                       padding=None, dilation: int = 1, groups: int = 1, bias: bool = False, **kwargs) -> "HetConv":
        """A HetConv from ``nn.Conv2d``'s arguments (``ConvNormAct(conv_layer=HetConv.from_conv_args, part=P)``):
        it has "same" padding, no dilation and no convolution groups (its ``part`` plays that role), so only
        those values are accepted; ``kwargs`` (``part``) go to the constructor."""
        check_fixed_conv_args(cls.__name__, kernel_size, padding, dilation, groups)
        return cls(in_channels, out_channels, kernel_size, stride, bias=bias, **kwargs)

    def pointwise_weight(self) -> torch.Tensor:
        """The dense (C_out, C_in) 1x1 kernel: zero where a filter has its K x K kernel."""
        w = self.pwc_weight
        return w.new_zeros(self.out_channels, self.in_channels).scatter(1, self.pwc_index, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        if self.part == 1:  # every kernel is K x K: no 1x1 part
            return self.gwc(x)
        pw = self.pointwise_weight()[:, :, None, None]
        return self.gwc(x) + F.conv2d(x, pw, stride=self.stride)
