"""Inception module (Szegedy et al., Going Deeper with Convolutions (GoogLeNet), CVPR 2015, arXiv 1409.4842).

Four parallel branches concatenated on channels, in this order: a 1x1 convolution; a 1x1 reduction then a
3x3 convolution; a 1x1 reduction then a 5x5 convolution; a 3x3 max-pool (stride 1, padding 1) then a 1x1
projection.  Every convolution is followed by ReLU (GoogLeNet has biases and no BatchNorm; pass
``norm_layer="batchnorm"`` for the BN-Inception form).  Defaults are GoogLeNet's inception (3a)
(192 -> 64 + 128 + 32 + 32 = 256).  A stride other than 1 (not in GoogLeNet, which downsamples between
modules) is applied by the spatial op of each branch: the 1x1, the 3x3, the 5x5 and the max-pool.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import ConvNormAct, LayerType, check_nchw, check_positive_int
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["InceptionBlock"]


@register_block("inception_block", family="conv", layout="conv",
                paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
                url="https://arxiv.org/abs/1409.4842",
                example=Example(args=(192, 256), input_shape=(2, 192, 12, 12)))
@validated()
class InceptionBlock(nn.Module):
    """GoogLeNet's Inception module (v1, with dimension reductions).

    Args:
        in_channels: input channels.
        out_channels: output channels; must equal ``ch1x1 + ch3x3 + ch5x5 + pool_proj`` (ValueError otherwise).
        ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj: the branch widths of GoogLeNet's Table 1
            (defaults: inception (3a), 64, 96, 128, 16, 32, 32).
        stride: stride of every branch (GoogLeNet: 1).
        act_layer: activation after every convolution (ReLU).
        norm_layer: norm after every convolution (GoogLeNet: none, biased convolutions).
    """

    def __init__(self, in_channels: int, out_channels: int, ch1x1: int = 64, ch3x3red: int = 96, ch3x3: int = 128,
                 ch5x5red: int = 16, ch5x5: int = 32, pool_proj: int = 32, stride: int = 1,
                 act_layer: LayerType = "relu", norm_layer: LayerType = None):
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        for name, v in (("ch1x1", ch1x1), ("ch3x3red", ch3x3red), ("ch3x3", ch3x3), ("ch5x5red", ch5x5red),
                        ("ch5x5", ch5x5), ("pool_proj", pool_proj), ("stride", stride)):
            check_positive_int(name, v)
        total = ch1x1 + ch3x3 + ch5x5 + pool_proj
        if out_channels != total:
            raise ValueError(f"out_channels ({out_channels}) must equal ch1x1 + ch3x3 + ch5x5 + pool_proj "
                             f"({ch1x1} + {ch3x3} + {ch5x5} + {pool_proj} = {total})")

        def cna(cin, cout, k, s=1):
            return ConvNormAct(cin, cout, k, s, norm_layer=norm_layer, act_layer=act_layer)

        self.branch1 = cna(in_channels, ch1x1, 1, stride)
        self.branch2 = nn.Sequential(cna(in_channels, ch3x3red, 1), cna(ch3x3red, ch3x3, 3, stride))
        self.branch3 = nn.Sequential(cna(in_channels, ch5x5red, 1), cna(ch5x5red, ch5x5, 5, stride))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride, padding=1), cna(in_channels, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)
