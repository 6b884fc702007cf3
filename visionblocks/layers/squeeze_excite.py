"""Squeeze-and-Excitation (Hu et al., CVPR 2018, arXiv 1709.01507), the channel gate many blocks and models
embed (MBConv, RepVGG-SE, GhostNet, CoAtNet...); registered as the block ``se``.

``y = x * gate(W2 act(W1 avgpool(x)))`` with ``W1: C -> C/r`` and ``W2: C/r -> C`` (both with bias).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .activations import create_act
from .checks import check_nchw
from .helpers import check_positive_int, reduced_channels
from .layer_type import LayerType
from .pointwise import pointwise_linear
from .pool import spatial_mean

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Module):
    """Channel gate from globally pooled features.

    Args:
        channels: input (= output) channels C.
        reduction: r, the bottleneck is ``max(1, C // r)`` wide (paper: 16).
        rd_channels: explicit bottleneck width (overrides ``reduction``).
        act_layer: activation of the bottleneck (paper: ReLU).
        gate_layer: the gate (paper: sigmoid).
    """

    def __init__(self, channels: int, reduction: int = 16, rd_channels: int | None = None,
                 act_layer: LayerType = "relu", gate_layer: LayerType = "sigmoid"):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        rd = reduced_channels(channels, reduction, rd_channels)
        self.fc1 = nn.Conv2d(channels, rd, 1)
        self.act = create_act(act_layer, inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, 1)
        self.gate = create_act(gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        # fc1/fc2 are 1x1 convolutions (their weights load from the paper's code) acting on a (B, C) vector:
        # they run as matrix products on their (out, in) weight views (a oneDNN convolution on a 1x1 map costs
        # several times more), or are called when hooked or replaced (pointwise_linear)
        s = spatial_mean(x)
        z = pointwise_linear(self.act(pointwise_linear(s, self.fc1)), self.fc2)
        return x * self.gate(z)[:, :, None, None]
