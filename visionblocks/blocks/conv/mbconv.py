"""Inverted residual / MBConv (Sandler et al., MobileNetV2, CVPR 2018, arXiv 1801.04381; Tan & Le,
EfficientNet, ICML 2019, arXiv 1905.11946).

``y = x + project(attn(depthwise_kxk(expand_1x1(x))))``: a 1x1 expansion by ``expand_ratio`` (skipped when it
is 1), a depthwise kxk convolution carrying the stride, an optional attention on the expanded features
(EfficientNet's squeeze-and-excitation with ``se_ratio`` of the *input* channels, or any module factory),
and a linear 1x1 projection (BN, no activation).  The identity shortcut is used when the stride is 1 and
the channel count is unchanged.  Defaults are EfficientNet's MBConv6 (k3, SE 0.25, swish).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from visionblocks.layers import SqueezeExcite
from visionblocks.layers import ConvNormAct, DropPath, check_nchw, check_odd, check_positive_int
from visionblocks.registry import Example, register_block


@register_block("mbconv", family="conv", layout="conv",
                paper="Tan & Le, EfficientNet: Rethinking Model Scaling for CNNs, ICML 2019 (MBConv of MobileNetV2)",
                url="https://arxiv.org/abs/1905.11946",
                example=Example(args=(32, 48), kwargs={"kernel_size": 3, "stride": 2}, input_shape=(2, 32, 16, 16)))
class MBConv(nn.Module):
    """Inverted residual block.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: depthwise kernel (3 or 5 in EfficientNet).
        stride: depthwise stride (1 or 2).
        expand_ratio: hidden width ``round(in_channels * expand_ratio)`` (6 in MobileNetV2/EfficientNet).
        se_ratio: SE bottleneck ``max(1, int(in_channels * se_ratio))``; 0 for none (MobileNetV2).
        act_layer: activation (EfficientNet: swish/SiLU; MobileNetV2: ReLU6).
        attn_layer: a factory ``channels -> nn.Module`` used instead of SE on the expanded features
            (e.g. coordinate attention); ``None`` uses SE when ``se_ratio > 0``.
        drop_path: stochastic-depth rate of the residual branch.
        norm_layer: norm after each convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 expand_ratio: float = 6.0, se_ratio: float = 0.25, act_layer="silu",
                 attn_layer: Callable[[int], nn.Module] | None = None, drop_path: float = 0.0,
                 norm_layer="batchnorm"):
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        check_odd("kernel_size", kernel_size)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio}")
        if not 0.0 <= se_ratio <= 1.0:
            raise ValueError(f"se_ratio must be in [0, 1], got {se_ratio}")
        hidden = int(round(in_channels * expand_ratio))
        self.stride = stride
        self.conv_pw = (ConvNormAct(in_channels, hidden, 1, norm_layer=norm_layer, act_layer=act_layer)
                        if expand_ratio != 1 else nn.Identity())
        self.conv_dw = ConvNormAct(hidden, hidden, kernel_size, stride, groups=hidden, norm_layer=norm_layer,
                                   act_layer=act_layer)
        if attn_layer is not None:
            self.attn = attn_layer(hidden)
        elif se_ratio > 0:
            self.attn = SqueezeExcite(hidden, rd_channels=max(1, int(in_channels * se_ratio)), act_layer=act_layer)
        else:
            self.attn = nn.Identity()
        self.conv_pwl = ConvNormAct(hidden, out_channels, 1, norm_layer=norm_layer, act_layer=None)
        self.has_skip = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path) if (drop_path > 0 and self.has_skip) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        y = self.conv_pwl(self.attn(self.conv_dw(self.conv_pw(x))))
        return x + self.drop_path(y) if self.has_skip else y
