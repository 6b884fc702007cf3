"""Selective Kernel convolution (Li et al., Selective Kernel Networks, CVPR 2019, arXiv 1903.06586).

Split: ``M`` branches ``U_m = ReLU(BN(GConv_{3x3, dilation m}(X)))`` (grouped, ``G`` groups; the paper's 5x5
branch is the 3x3 with dilation 2).  Fuse: ``U = sum_m U_m``, ``s = avgpool(U)``, ``z = ReLU(BN(W s))`` with
``W: C -> d``, ``d = max(C // r, L)``.  Select: ``a_m = softmax_m(A_m z)`` (softmax across the branches, per
channel) and ``V = sum_m a_m * U_m``.  As in the paper's equations, ``W`` and the ``A_m`` have no bias.

The unit keeps the shape by default (``nchw`` block); ``out_channels``/``stride`` let it replace the 3x3
convolution of a ResNeXt bottleneck (SKNet-50, Table 1: M=2, G=32, r=16, L=32).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvNormAct, LayerType, as_memory_format, check_nchw, check_positive_int, conv_geometry, deprecated_kwargs,
    pointwise_forward, reduced_channels, spatial_mean,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["SelectiveKernelConv"]


@register_block("selective_kernel_conv", family="conv", layout="nchw", aliases=("sk",),
                paper="Li et al., Selective Kernel Networks, CVPR 2019", url="https://arxiv.org/abs/1903.06586",
                example=Example(args=(64,), kwargs={}, input_shape=(2, 64, 14, 14)))
@validated(pooled_bn="the fuse layer's BatchNorm on globally pooled features")
class SelectiveKernelConv(nn.Module):
    """SK convolution: multi-kernel grouped branches mixed by a channel-wise softmax attention.

    Args:
        channels: input channels C.
        out_channels: output channels (default: ``channels``).
        stride: stride of every branch (1 keeps the size; 2 for a downsampling bottleneck).
        groups: G, groups of each branch convolution (paper: 32).
        reduction: r, the fuse layer is ``max(out_channels // r, min_channels)`` wide (paper: 16).
        min_channels: L, the smallest fuse width (paper: 32; formerly ``min_dim``, still accepted with a
            ``DeprecationWarning``).
        num_branches: M, branch ``m`` is a 3x3 convolution with dilation ``m + 1`` (paper: 2).
        act_layer: activation of the branches and the fuse layer (paper: ReLU).
        norm_layer: normalisation of the branches and the fuse layer (paper: BatchNorm).
    """

    @deprecated_kwargs(min_dim="min_channels")
    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1, groups: int = 32,
                 reduction: int = 16, min_channels: int = 32, num_branches: int = 2, act_layer: LayerType = "relu",
                 norm_layer: LayerType = "batchnorm"):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        conv_geometry(channels, out_channels, 3, stride, None, 1, groups)
        self.channels, self.out_channels = channels, out_channels
        self.num_branches = check_positive_int("num_branches", num_branches)
        self.branches = nn.ModuleList(
            ConvNormAct(channels, out_channels, 3, stride, dilation=m + 1, groups=groups, norm_layer=norm_layer,
                        act_layer=act_layer)
            for m in range(num_branches))
        d = reduced_channels(out_channels, reduction, min_channels=check_positive_int("min_channels", min_channels))
        self.fuse = ConvNormAct(out_channels, d, 1, norm_layer=norm_layer, act_layer=act_layer)
        # the M matrices A_m (C x d) stacked into one 1x1 convolution: d -> M * C
        self.select = nn.Conv2d(d, num_branches * out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        # the dilated branches (m >= 1) run on a channels-last copy: oneDNN's grouped *dilated* convolution in
        # NCHW takes a slow path whose backward is up to 10x slower, and collapses under CPU contention (seconds
        # per call at 256 channels, 28x28); the undilated first branch is fastest on the input as it is
        xc = as_memory_format(x, torch.channels_last)
        u = [branch(x if m == 0 else xc) for m, branch in enumerate(self.branches)]      # M x (B, C, H, W)
        s = sum(spatial_mean(um) for um in u)                                          # avgpool(sum_m U_m): (B, C)
        # fuse (1x1 conv-BN-act) and select on the pooled vectors, their 1x1 convolutions as matrix products
        z = pointwise_forward(s, self.fuse)                                            # (B, d)
        a = pointwise_forward(z, self.select).unflatten(1, (self.num_branches, self.out_channels))
        a = a.softmax(dim=1)[..., None, None]                                          # (B, M, C, 1, 1)
        # V = sum_m a_m * U_m as fused multiply-adds (no stacked (B, M, C, H, W) copy of the branches)
        out = u[0] * a[:, 0]
        for m in range(1, self.num_branches):
            out = torch.addcmul(out, u[m], a[:, m])
        return out
