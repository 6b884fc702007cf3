"""ParNet block, RepVGG-SSE (Goyal, Bochkovskiy, Deng & Koltun, Non-deep Networks, NeurIPS 2022,
arXiv 2110.07641).

Three parallel branches summed and passed through SiLU:
``y = SiLU(BN(conv3x3(x)) + BN(conv1x1(x)) + SSE(x))`` with the Skip-Squeeze-Excitation
``SSE(x) = BN(x) * sigmoid(W GAP(BN(x)))`` -- a squeeze-excitation with a single fully-connected layer
``W: C -> C`` (no bias, as in the authors' code) on the batch-normalised skip connection.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import ConvNormAct, check_nchw, check_positive_int, create_act
from visionblocks.registry import Example, register_block


@register_block("parnet_attention", family="attention", layout="nchw",
                paper="Goyal et al., Non-deep Networks, NeurIPS 2022", url="https://arxiv.org/abs/2110.07641",
                example=Example(args=(64,), input_shape=(2, 64, 14, 14)))
class ParNetAttention(nn.Module):
    """RepVGG-SSE block: 3x3 conv-BN + 1x1 conv-BN + skip-squeeze-excitation, then SiLU.

    Args:
        channels: input (= output) channels C.
        act_layer: the final activation (paper: SiLU).
    """

    def __init__(self, channels: int, act_layer="silu"):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.conv3x3 = ConvNormAct(channels, channels, 3, act_layer=None)
        self.conv1x1 = ConvNormAct(channels, channels, 1, act_layer=None)
        self.skip_bn = nn.BatchNorm2d(channels)
        self.sse_fc = nn.Conv2d(channels, channels, 1, bias=False)
        self.act = create_act(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        s = self.skip_bn(x)
        sse = s * torch.sigmoid(self.sse_fc(s.mean((2, 3), keepdim=True)))
        return self.act(self.conv3x3(x) + self.conv1x1(x) + sse)
