"""Ghost module (Han et al., GhostNet: More Features from Cheap Operations, CVPR 2020, arXiv 1911.11907).

A primary convolution (kernel k, stride s, BN, ReLU) makes ``m = ceil(n / r)`` intrinsic maps ``Y'``; a
cheap depthwise ``d x d`` convolution (``groups = m``, BN, ReLU) makes ``(r - 1)`` "ghost" maps from each
of them; ``Y = [Y', ghosts][:, :n]`` (truncated to the n requested channels).  Parameters and multiply-adds
are about ``1 / r`` of a dense convolution.  Defaults are the paper's: k=1, r=2, d=3.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvNormAct, LayerType, cat_channels, check_nchw, check_odd, check_positive_int, conv_geometry, memory_format_of,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["GhostConv"]


@register_block("ghost_conv", family="conv", layout="conv",
                paper="Han et al., GhostNet: More Features from Cheap Operations, CVPR 2020",
                url="https://arxiv.org/abs/1911.11907",
                example=Example(args=(16, 32, 1, 1), input_shape=(2, 16, 14, 14)))
@validated()
class GhostConv(nn.Module):
    """Ghost module: primary conv + cheap depthwise "ghost" features, concatenated.

    Args:
        in_channels, out_channels: channels in and out (n).
        kernel_size: k of the primary convolution (paper: 1).
        stride: stride of the primary convolution.
        ratio: r, so ``ceil(n / r)`` intrinsic maps (paper: 2).
        dw_size: d of the cheap depthwise convolution (paper: 3).
        act_layer: activation after both convolutions (ReLU; ``None`` for the linear ghost module that
            ends a GhostNet bottleneck).
        norm_layer: norm after both convolutions (BatchNorm).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, ratio: int = 2,
                 dw_size: int = 3, act_layer: LayerType = "relu", norm_layer: LayerType = "batchnorm"):
        super().__init__()
        k, stride, padding, _ = conv_geometry(in_channels, out_channels, kernel_size, stride, None, 1, 1)
        self.in_channels, self.out_channels = in_channels, out_channels
        if check_positive_int("ratio", ratio) < 2:
            raise ValueError(f"ratio must be >= 2 (one intrinsic map makes ratio-1 ghosts), got {ratio}")
        check_odd("dw_size", check_positive_int("dw_size", dw_size))
        init = math.ceil(out_channels / ratio)
        self.primary = ConvNormAct(in_channels, init, k, stride, padding, norm_layer=norm_layer, act_layer=act_layer)
        self.cheap = ConvNormAct(init, init * (ratio - 1), dw_size, groups=init, norm_layer=norm_layer,
                                 act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        y = self.primary(x)
        # the linear module's halves end with a BatchNorm, whose backward wants a dense gradient (cat_channels);
        # after an activation, its backward already hands one over
        linear = isinstance(self.cheap.act, nn.Identity)
        out = cat_channels([y, self.cheap(y)]) if linear else torch.cat([y, self.cheap(y)], dim=1)
        if out.shape[1] == self.out_channels:
            return out
        # ceil(n / r) r maps > n: the first n, stored densely (a channel slice is a strided view)
        return out[:, :self.out_channels].contiguous(memory_format=memory_format_of(out))
