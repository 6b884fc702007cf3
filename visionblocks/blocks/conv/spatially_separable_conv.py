"""Spatially separable convolution (Jaderberg, Vedaldi & Zisserman, Speeding up Convolutional Neural
Networks with Low Rank Expansions, BMVC 2014, arXiv 1405.3866; Szegedy et al., Rethinking the Inception
Architecture (Inception-v3), CVPR 2016, arXiv 1512.00567).

A KxK convolution factorized into a Kx1 convolution (``mid_channels`` filters, stride ``(s, 1)``, padding
``(K//2, 0)``) followed by a 1xK convolution (stride ``(1, s)``, padding ``(0, K//2)``).  Linear (the
default: no norm/activation in between, no bias on the first), it is *exactly* the KxK convolution with the
rank-limited kernel ``W[o, i, u, v] = sum_m B[o, m, v] A[m, i, u]``, borders included, at ``K (C_in + C_out)
mid`` weights.  Inception-v3 puts BN + ReLU after each factor: pass ``norm_layer``/``act_layer``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import square_conv_geometry, ConvNormAct, LayerType, check_nchw, check_positive_int
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block


__all__ = ["SpatiallySeparableConv"]


@register_block("spatially_separable_conv", family="conv", layout="conv",
                paper="Jaderberg et al., Speeding up Convolutional Neural Networks with Low Rank Expansions, "
                      "BMVC 2014; Szegedy et al., Rethinking the Inception Architecture, CVPR 2016",
                url="https://arxiv.org/abs/1405.3866",
                example=Example(args=(16, 32, 3, 1), input_shape=(2, 16, 14, 14)))
@validated()
class SpatiallySeparableConv(nn.Module):
    """Kx1 then 1xK convolution.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: K (odd; Inception-v3 uses 3 and 7).
        stride: s, applied as (s, 1) on the Kx1 and (1, s) on the 1xK convolution.
        mid_channels: filters of the Kx1 factor, the rank of the factorization (default ``out_channels``,
            as in Inception-v3's factorized layers).
        bias: bias of the last factor (with ``norm_layer`` the convs have no bias).
        norm_layer, act_layer: applied after *each* factor when given (Inception-v3: BatchNorm, ReLU);
            ``None`` (default) keeps the factorization linear.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 mid_channels: int | None = None, bias: bool = True, norm_layer: LayerType = None,
                 act_layer: LayerType = None):
        super().__init__()
        k, s, p = square_conv_geometry(in_channels, out_channels, kernel_size, stride)
        self.in_channels, self.out_channels = in_channels, out_channels
        mid = check_positive_int("mid_channels", mid_channels if mid_channels is not None else out_channels)
        linear = norm_layer is None and act_layer is None
        self.conv_v = ConvNormAct(in_channels, mid, (k, 1), (s, 1), padding=(p, 0),
                                  bias=False if linear else None, norm_layer=norm_layer, act_layer=act_layer)
        self.conv_h = ConvNormAct(mid, out_channels, (1, k), (1, s), padding=(0, p),
                                  bias=bias if norm_layer is None else False, norm_layer=norm_layer, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        return self.conv_h(self.conv_v(x))
