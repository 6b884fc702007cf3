"""Depthwise separable convolution (Howard et al., MobileNets, arXiv 1704.04861; Chollet, Xception, CVPR 2017).

``y = act(BN(P * act(BN(D * x))))``: a depthwise KxK convolution ``D`` (one filter per input channel,
``groups = in_channels``, carrying the stride) followed by a pointwise 1x1 convolution ``P``, each followed
by BatchNorm and ReLU as in MobileNets' Fig. 3.  Without norm/activation it is the dense convolution with
the rank-structured kernel ``W[o, i, u, v] = P[o, i] D[i, u, v]``, at ``K^2 C_in + C_in C_out`` weights
instead of ``K^2 C_in C_out``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import ConvNormAct, LayerType, check_nchw, check_positive_int, conv_geometry
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["DepthwiseSeparableConv"]


@register_block("depthwise_separable_conv", family="conv", layout="conv",
                paper="Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile Vision "
                      "Applications, arXiv 2017",
                url="https://arxiv.org/abs/1704.04861",
                example=Example(args=(16, 32, 3, 1), input_shape=(2, 16, 14, 14)))
@validated()
class DepthwiseSeparableConv(nn.Module):
    """Depthwise KxK (stride s) -> norm -> act -> pointwise 1x1 -> norm -> act.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: depthwise kernel K (odd; MobileNets: 3).
        stride: stride of the depthwise convolution.
        depth_multiplier: depthwise outputs per input channel (MobileNets/Xception: 1).
        act_layer: activation after each convolution (MobileNets: ReLU; ``None`` for a linear block).
        norm_layer: norm after each convolution (MobileNets: BatchNorm; ``None`` gives biased convs).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 depth_multiplier: int = 1, act_layer: LayerType = "relu", norm_layer: LayerType = "batchnorm"):
        super().__init__()
        mid = in_channels * check_positive_int("depth_multiplier", depth_multiplier)
        k, stride, padding, _ = conv_geometry(in_channels, mid, kernel_size, stride, None, 1, in_channels)
        self.in_channels, self.out_channels = in_channels, check_positive_int("out_channels", out_channels)
        self.conv_dw = ConvNormAct(in_channels, mid, k, stride, padding, groups=in_channels,
                                   norm_layer=norm_layer, act_layer=act_layer)
        self.conv_pw = ConvNormAct(mid, out_channels, 1, norm_layer=norm_layer, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        return self.conv_pw(self.conv_dw(x))
