"""Squeeze-and-Excitation (Hu et al., CVPR 2018, arXiv 1709.01507).

``y = x * sigmoid(W2 relu(W1 avgpool(x)))`` with ``W1: C -> C/r`` and ``W2: C/r -> C`` (both with bias).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import check_nchw, check_positive_int, create_act, spatial_mean
from visionblocks.registry import Example, register_block


@register_block("se", family="attention", layout="nchw", paper="Hu et al., Squeeze-and-Excitation Networks, CVPR 2018",
                url="https://arxiv.org/abs/1709.01507", example=Example(args=(64,), input_shape=(2, 64, 14, 14)))
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
                 act_layer="relu", gate_layer="sigmoid"):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("reduction", reduction)
        rd = rd_channels if rd_channels is not None else max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, rd, 1)
        self.act = create_act(act_layer, inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, 1)
        self.gate = create_act(gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        # the two 1x1 convolutions act on a (B, C) vector: run them as matrix products on their (out, in)
        # weight views (same parameters); a oneDNN convolution on a 1x1 map costs several times more
        s = spatial_mean(x)
        z = F.linear(self.act(F.linear(s, self.fc1.weight.flatten(1), self.fc1.bias)),
                     self.fc2.weight.flatten(1), self.fc2.bias)
        return x * self.gate(z)[:, :, None, None]
