"""Convolutional Block Attention Module (Woo et al., ECCV 2018, arXiv 1807.06521).

Channel attention ``Mc = sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))`` (shared MLP ``C -> C/r -> C``), then
spatial attention ``Ms = sigmoid(BN(conv7x7([mean_c(x'); max_c(x')])))`` on ``x' = Mc * x``;
``y = Ms * x'``.  The BatchNorm after the 7x7 convolution follows the authors' code (Jongchan/attention-module).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvMlp, LayerType, PlaneConv2d, check_nchw, check_odd, check_positive_int, is_channels_last, is_hooked, max_over,
    reduced_channels, spatial_mean,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["CBAM", "ChannelGate", "SpatialGate"]


class ChannelGate(nn.Module):
    """CBAM's channel attention map ``Mc`` (B, C, 1, 1)."""

    def __init__(self, channels: int, rd_channels: int, act_layer: LayerType = "relu"):
        super().__init__()
        self.mlp = ConvMlp(channels, rd_channels, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the spatial maximum over the positions as one axis: (B, C, H W), or (B, H W, C) for a channels-last x
        # (flattening its (B, C, H, W) view would copy it)
        mx = max_over(x.permute(0, 2, 3, 1).flatten(1, 2), 1) if is_channels_last(x) else max_over(x.flatten(2), 2)
        pooled = torch.cat([spatial_mean(x), mx])
        both, B = self.mlp.forward_vector(pooled), x.shape[0]  # one pass of the shared MLP over both descriptors
        # (halves as slices: chunk's SplitToSequence of a dynamic batch stops ONNX's optimiser)
        return torch.sigmoid(both[:B] + both[B:])[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM's spatial attention map ``Ms`` (B, 1, H, W)."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        check_odd("kernel_size", kernel_size)
        self.conv = PlaneConv2d(2, 1, kernel_size)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the channel mean as a sum over C divided on the small map: its backward is a broadcast view
        s = torch.cat([x.sum(1, keepdim=True) / x.shape[1], max_over(x, 1, keepdim=True)], dim=1)
        return torch.sigmoid(self.bn(self.conv(s)))


@register_block("cbam", family="attention", layout="nchw",
                paper="Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018",
                url="https://arxiv.org/abs/1807.06521", example=Example(args=(64,), input_shape=(2, 64, 14, 14)))
@validated(kernel_size="odd")
class CBAM(nn.Module):
    """Channel then spatial attention.

    Args:
        channels: input (= output) channels C.
        reduction: r, the shared channel MLP is ``max(1, C // r)`` wide (paper: 16).
        kernel_size: spatial attention kernel (paper: 7).
        act_layer: MLP activation (paper: ReLU).
        rd_channels: explicit width of the channel MLP (overrides ``reduction``; keyword only).
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, act_layer: LayerType = "relu", *,
                 rd_channels: int | None = None):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.channel_gate = ChannelGate(channels, reduced_channels(channels, reduction, rd_channels), act_layer)
        self.spatial_gate = SpatialGate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        x = x * self.channel_gate(x)
        ms = self.spatial_gate(x)
        # without autograd, the second gate multiplies in place (no second full-size allocation), unless a hook on
        # the spatial gate may hold its input x
        if torch.is_grad_enabled() or is_hooked(self.spatial_gate):
            return x * ms
        return x.mul_(ms)
