"""Contextual Convolution, CoConv (Duta, Georgescu & Ionescu, "Contextual Convolutional Neural Networks",
ICCV Workshops 2021, arXiv 2108.07387).

A ``K x K`` convolution is replaced by ``L`` parallel ``K x K`` convolutions ("levels") with dilations
``1, 2, ..., L`` (padding ``d (K - 1) / 2``), each seeing every input channel and producing a share of the output
channels, concatenated in the order of the dilations::

    y = concat_l( conv(x; W_l, dilation=d_l) ),   sum_l C_l = C_out

so the parameters and FLOPs equal those of the plain ``K x K`` convolution ``C_in -> C_out`` while the larger
dilations add context.  Default channel shares (paper / official code): L=1: all; L=2: 1/2, 1/2; L=3: 1/2, 1/4,
1/4; L=4: 1/4 each; L=5: 1/4, 1/4, 1/4, 1/8, 1/8.  CoResNet uses L = 4, 3, 2, 1 in its four stages.
"""
from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn as nn

from visionblocks.layers import square_conv_geometry, check_nchw, check_positive_int, same_padding
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._conv_base import check_fixed_conv_args

__all__ = ["CoConv", "coconv_splits"]

_SHARES = {
    1: (Fraction(1),),
    2: (Fraction(1, 2),) * 2,
    3: (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4)),
    4: (Fraction(1, 4),) * 4,
    5: (Fraction(1, 4),) * 3 + (Fraction(1, 8),) * 2,
}


def coconv_splits(out_channels: int, levels: int) -> list[int]:
    """The paper's output channels per level for ``levels`` in 1..5 (``ValueError`` if they are not integers)."""
    if levels not in _SHARES:
        raise ValueError(f"default channel shares exist for 1..5 levels, got levels={levels}; pass out_splits")
    splits = [share * out_channels for share in _SHARES[levels]]
    if any(s.denominator != 1 for s in splits):
        denom = max(s.denominator for s in _SHARES[levels])
        raise ValueError(f"out_channels ({out_channels}) must be divisible by {denom} for {levels} CoConv levels")
    return [int(s) for s in splits]


@register_block("coconv", family="conv", layout="conv",
                paper="Duta et al., Contextual Convolutional Neural Networks, ICCV Workshops 2021",
                url="https://arxiv.org/abs/2108.07387",
                example=Example(args=(32, 64, 3), kwargs={"levels": 4}, input_shape=(2, 32, 14, 14)))
@validated()
class CoConv(nn.Module):
    """Parallel dilated convolutions concatenated on channels.

    Args:
        in_channels, out_channels, kernel_size, stride: as ``nn.Conv2d`` (odd kernel, "same" padding).
        levels: number of levels L (paper: 4 in the first ResNet stage, then 3, 2, 1).
        dilations: dilation of each level (default ``1..L``).
        out_splits: output channels of each level (default: the paper's shares, see the module docstring).
        groups: groups of every level's convolution (paper: 1).
        bias: add a bias (paper: no; a BatchNorm follows).

    :meth:`from_conv_args` builds it from ``nn.Conv2d``'s arguments, for ``ConvNormAct(conv_layer=...)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, levels: int = 4,
                 dilations: list[int] | None = None, out_splits: list[int] | None = None, groups: int = 1,
                 bias: bool = False):
        super().__init__()
        kernel_size, stride, _ = square_conv_geometry(in_channels, out_channels, kernel_size, stride, groups)
        self.in_channels, self.out_channels = in_channels, out_channels
        check_positive_int("levels", levels)
        dilations = list(range(1, levels + 1)) if dilations is None else list(dilations)
        splits = coconv_splits(out_channels, levels) if out_splits is None else list(out_splits)
        if len(dilations) != levels or len(splits) != levels:
            raise ValueError(f"dilations ({dilations}) and out_splits ({splits}) need one entry per level ({levels})")
        if sum(splits) != out_channels:
            raise ValueError(f"out_splits {splits} must sum to out_channels ({out_channels})")
        if any(c % groups or c <= 0 for c in splits):
            raise ValueError(f"every level's channels {splits} must be positive multiples of groups ({groups})")
        self.dilations, self.out_splits = dilations, splits
        self.levels = nn.ModuleList(
            nn.Conv2d(in_channels, c, kernel_size, stride, same_padding(kernel_size, d), d, groups, bias=bias)
            for c, d in zip(splits, dilations))

    @classmethod
    def from_conv_args(cls, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                       padding=None, dilation: int = 1, groups: int = 1, bias: bool = False, **kwargs) -> "CoConv":
        """A CoConv from ``nn.Conv2d``'s arguments (``ConvNormAct(conv_layer=CoConv.from_conv_args, levels=L)``,
        CoResNet's CoConv -> BN -> ReLU): each level sets its own dilation and "same" padding, so only
        ``padding=None`` (or ``kernel_size // 2``) and ``dilation=1`` are accepted; ``kwargs`` (``levels``,
        ``dilations``, ``out_splits``) go to the constructor."""
        check_fixed_conv_args(cls.__name__, kernel_size, padding, dilation)
        return cls(in_channels, out_channels, kernel_size, stride, groups=groups, bias=bias, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        if len(self.levels) == 1:
            return self.levels[0](x)
        return torch.cat([conv(x) for conv in self.levels], dim=1)
