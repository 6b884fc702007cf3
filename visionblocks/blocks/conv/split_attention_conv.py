"""Split-Attention convolution of ResNeSt (Zhang et al., "ResNeSt: Split-Attention Networks", CVPR Workshops
2022, arXiv 2004.08955).

With cardinality ``K`` (``groups``) and radix ``R``, one grouped convolution (``K R`` groups) followed by BN and
ReLU gives ``R`` splits ``U_1..U_R`` of ``C`` channels each (radix-major: split ``r`` is channels
``r C .. (r+1) C - 1``; inside a split the ``K`` cardinal groups are contiguous).  Per cardinal group ``k``
(paper Sec. 3.1-3.2, Eq. 1-4)::

    s_k = GAP(sum_r U_{r,k})                    (C/K values)
    z_k = ReLU(BN(W1_k s_k))                    (inter/K values; inter = max(C_in R // reduction, 32))
    a_{r,k} = softmax_r(W2_k z_k)               (r-softmax over the radix; sigmoid when R = 1)
    V_k = sum_r a_{r,k} * U_{r,k}

and ``y = concat_k V_k`` (C = out_channels).  ``W1``/``W2`` are 1x1 convolutions with ``groups=K`` (with bias);
``W2_k``'s output is laid out (radix, C/K), as in the paper's radix-major implementation (its Fig. 4).
Stride is applied by the grouped convolution (ResNeSt's network instead puts a 3x3 average pooling after the
block, ``avd``; see ``visionblocks/models/resnest.py``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvNormAct, LayerType, check_divisible, check_nchw, check_positive_int, conv_geometry, deprecated_kwargs,
    pointwise_forward, reduced_channels, spatial_mean,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["SplitAttentionConv"]


@register_block("split_attention_conv", family="conv", layout="conv",
                paper="Zhang et al., ResNeSt: Split-Attention Networks, CVPR Workshops 2022",
                url="https://arxiv.org/abs/2004.08955",
                example=Example(args=(64, 64, 3), kwargs={"radix": 2, "groups": 1}, input_shape=(2, 64, 14, 14)))
@validated(pooled_bn="the attention MLP's BatchNorm on globally pooled features")
class SplitAttentionConv(nn.Module):
    """ResNeSt split-attention convolution (``SplAtConv2d``).

    Args:
        in_channels, out_channels, kernel_size, stride, dilation: of the grouped convolution ("same" padding).
        groups: cardinality K (ResNeSt-50: 1).
        radix: R splits per cardinal group (paper: 2).
        reduction: the attention bottleneck is ``max(in_channels * R // reduction, min_channels)`` wide
            (paper: 4; formerly ``reduction_factor``).
        min_channels: lower bound of that width (paper: 32; formerly ``min_inter_channels``).
        bias: bias of the grouped convolution (paper: no, BN follows).
        norm_layer, act_layer: after the grouped convolution and in the attention MLP (paper: BN, ReLU).

    The former keyword names still work, with a ``DeprecationWarning``.
    """

    @deprecated_kwargs(reduction_factor="reduction", min_inter_channels="min_channels")
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 radix: int = 2, reduction: int = 4, min_channels: int = 32, dilation: int = 1,
                 bias: bool = False, norm_layer: LayerType = "batchnorm", act_layer: LayerType = "relu"):
        super().__init__()
        k, s, p, d = conv_geometry(in_channels, out_channels, kernel_size, stride, None, dilation, groups)
        check_divisible("in_channels", in_channels, "groups * radix", groups * check_positive_int("radix", radix))
        self.in_channels, self.out_channels = in_channels, out_channels
        inter = reduced_channels(in_channels * radix, reduction,
                                 min_channels=check_positive_int("min_channels", min_channels))
        if inter % groups:
            raise ValueError(f"the attention width ({inter}) must be divisible by groups ({groups})")
        self.radix, self.groups, self.inter_channels = radix, groups, inter
        # one grouped conv-BN-act gives the R splits; fc1 (conv-BN-act) and fc2 are the grouped attention MLP
        self.conv = ConvNormAct(in_channels, out_channels * radix, k, s, p, d, groups * radix, bias=bias,
                                norm_layer=norm_layer, act_layer=act_layer)
        self.fc1 = ConvNormAct(out_channels, inter, 1, groups=groups, bias=True, norm_layer=norm_layer,
                               act_layer=act_layer)
        self.fc2 = nn.Conv2d(inter, out_channels * radix, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        u = self.conv(x)
        b, c, r = u.shape[0], self.out_channels, self.radix
        # the R splits as views of u, so every pass below keeps u's layout: on a channels-last u, the (B, R, C, H, W)
        # view reduced over R would have ATen reduce across C and return an NCHW map (at 8x64x28x28: 10x the NCHW
        # sum; fused ResNeSt-50 ran 1.26x slower in channels-last than in NCHW)
        splits = u.unflatten(1, (r, c)).unbind(1)                           # R x (B, C, H, W)
        s = spatial_mean(splits[0])                                          # GAP of the sum of the splits
        for t in splits[1:]:
            s = s + spatial_mean(t)
        # the attention MLP on the pooled vector (1x1 convolutions without groups run as matrix products), then the
        # r-softmax per cardinal group (R > 1) or the sigmoid (R = 1)
        a = pointwise_forward(pointwise_forward(s, self.fc1), self.fc2)     # (B, K*R*C/K)
        if r > 1:
            a = a.reshape(b, self.groups, r, c // self.groups).softmax(2).transpose(1, 2)
        else:
            a = torch.sigmoid(a)
        a = a.reshape(b, r, c, 1, 1)
        out = splits[0] * a[:, 0]
        for i in range(1, r):                                                # the attention-weighted sum
            out = torch.addcmul(out, splits[i], a[:, i])
        return out
