"""Bottleneck Attention Module (Park et al., BAM: Bottleneck Attention Module, BMVC 2018, arXiv 1807.06514).

``F' = F + F * M(F)`` with ``M(F) = sigmoid(Mc(F) + Ms(F))`` (the (B, C, 1, 1) and (B, 1, H, W) maps broadcast
to (B, C, H, W)).  Channel branch ``Mc(F) = BN(MLP(avgpool(F)))`` with the MLP ``C -> C/r -> C`` (ReLU hidden layer,
biases as in Eq. 2).  Spatial branch
``Ms(F) = BN(f3_1x1(f2_3x3(f1_3x3(f0_1x1(F)))))``: a 1x1 reduction to C/r, two 3x3 convolutions with dilation
d (each BN-ReLU) and a 1x1 projection to one map.  Paper defaults r = 16, d = 4.  The padding of the dilated
convolutions equals the dilation, so H and W are kept at any size.

Deviation from the authors' code (not from the paper): their code multiplies the two maps
(``sigmoid(Mc * Ms)``), puts a BatchNorm on the MLP's hidden layer instead of its output and leaves out the
spatial branch's final BatchNorm; we follow the paper (element-wise sum, its best combination in the ablation,
and the BNs of Eqs. 2-3).  The BNs inside the spatial branch (after each convolution but the last) are the
authors'.

What their checkpoints mean for ours (Jongchan/attention-module, ``MODELS/bam.py``), besides the above: every
convolution and linear layer of theirs carries a bias, those followed by a BatchNorm included (ours have none
there: a bias before a BN only shifts its running mean); and their channel branch pools with
``avg_pool2d(x, H, stride=H)``, a global average only on square inputs (on an H x W input with W != H it pools
H x H windows and the MLP then sees ``C * (W // H)`` features, or fails).  Their BAM weights therefore do not
load into this block as the same function.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvMlp, ConvNormAct, LayerType, check_nchw, check_positive_int, create_norm, reduced_channels,
    spatial_mean,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["BAM", "BAMChannelGate", "BAMSpatialGate"]


class BAMChannelGate(nn.Module):
    """``Mc(F) = BN(MLP(avgpool(F)))``, shape (B, C, 1, 1)."""

    def __init__(self, channels: int, rd_channels: int, act_layer: LayerType = "relu",
                 norm_layer: LayerType = "batchnorm"):
        super().__init__()
        self.mlp = ConvMlp(channels, rd_channels, act_layer=act_layer)
        self.bn = create_norm(norm_layer, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.mlp.forward_vector(spatial_mean(x))[:, :, None, None])


class BAMSpatialGate(nn.Module):
    """``Ms(F) = BN(conv1x1(conv3x3_d(conv3x3_d(conv1x1(F)))))``, shape (B, 1, H, W)."""

    def __init__(self, channels: int, rd_channels: int, dilation: int = 4, num_dilated: int = 2,
                 act_layer: LayerType = "relu", norm_layer: LayerType = "batchnorm"):
        super().__init__()
        layers = [ConvNormAct(channels, rd_channels, 1, norm_layer=norm_layer, act_layer=act_layer)]
        layers += [ConvNormAct(rd_channels, rd_channels, 3, padding=dilation, dilation=dilation, norm_layer=norm_layer,
                               act_layer=act_layer) for _ in range(num_dilated)]
        layers += [nn.Conv2d(rd_channels, 1, 1)]
        self.body = nn.Sequential(*layers)
        self.bn = create_norm(norm_layer, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.body(x))


@register_block("bam", family="attention", layout="nchw",
                paper="Park et al., BAM: Bottleneck Attention Module, BMVC 2018", url="https://arxiv.org/abs/1807.06514",
                example=Example(args=(64,), kwargs={}, input_shape=(2, 64, 14, 14)))
@validated(pooled_bn="the channel gate's BatchNorm on globally pooled features")
class BAM(nn.Module):
    """Channel and spatial attention computed in parallel and applied residually: ``F + F * sigmoid(Mc + Ms)``.

    Args:
        channels: input (= output) channels C.
        reduction: r, both branches are ``max(1, C // r)`` wide (paper: 16).
        dilation: d of the spatial branch's 3x3 convolutions (paper: 4); their padding equals it.
        num_dilated: number of dilated 3x3 convolutions (paper: 2).
        act_layer: activation (paper: ReLU).
        norm_layer: normalisation (paper: BatchNorm).
        rd_channels: explicit width of both branches (overrides ``reduction``; keyword only).
    """

    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4, num_dilated: int = 2,
                 act_layer: LayerType = "relu", norm_layer: LayerType = "batchnorm", *, rd_channels: int | None = None):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("dilation", dilation)
        if isinstance(num_dilated, bool) or not isinstance(num_dilated, int) or num_dilated < 0:
            raise ValueError(f"num_dilated must be a non-negative int, got {num_dilated!r}")
        rd = reduced_channels(channels, reduction, rd_channels)
        self.channel_gate = BAMChannelGate(channels, rd, act_layer, norm_layer)
        self.spatial_gate = BAMSpatialGate(channels, rd, dilation, num_dilated, act_layer, norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        return torch.addcmul(x, x, torch.sigmoid(self.channel_gate(x) + self.spatial_gate(x)))
