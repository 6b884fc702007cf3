"""Res2Net (Gao et al., "Res2Net: A New Multi-scale Backbone Architecture", TPAMI 2021, arXiv 1904.01169).

Res2Net-50 26w x 4s: the ResNet-50 layout (7x7 stem, strided 1x1 + BN shortcuts) with every bottleneck replaced
by :class:`~visionblocks.blocks.conv.res2net_block.Res2NetBlock` (split width 26 for 64 planes, scale 4; the
split convolutions carry the stride; the first block of each stage is a "stage" block).
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from visionblocks.blocks.conv import Res2NetBlock
from visionblocks.layers import LayerType
from visionblocks.registry import register_model

from .resnet import ResNet, build_resnet

__all__ = ["Res2NetBottleneck", "res2net50_26w_4s"]

_PAPER = "Gao et al., Res2Net: A New Multi-scale Backbone Architecture, TPAMI 2021"
_URL = "https://arxiv.org/abs/1904.01169"


class Res2NetBottleneck(Res2NetBlock):
    """:class:`Res2NetBlock` with ResNet's block signature ``(in_channels, planes, stride, groups, base_width, ...)``.

    ``scale`` is a class attribute so that ``ResNet(block=...)`` can build it; subclass to change it.
    """

    expansion = 4
    scale = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 26,
                 attn_layer: Callable[[int], nn.Module] | None = None, act_layer: LayerType = "relu",
                 drop_path: float = 0.0, avg_down: bool = False):
        super().__init__(in_channels, planes * self.expansion, 3, stride, base_width=base_width, scale=type(self).scale,
                         groups=groups, attn_layer=attn_layer, act_layer=act_layer, drop_path=drop_path,
                         avg_down=avg_down)


@register_model("res2net50_26w_4s", paper=_PAPER, url=_URL, paper_params=25.7, paper_macs=4.2,
                macs_rel_tol=0.02, test_input_size=(32, 32))
def res2net50_26w_4s(**kwargs) -> ResNet:
    """Res2Net-50 (26w x 4s): 25.7 M params, 4.2 GFLOPs (4.26 G counted) at 224x224 (Gao et al., Table 2)."""
    return build_resnet(Res2NetBottleneck, (3, 4, 6, 3), kwargs, width_per_group=26)
