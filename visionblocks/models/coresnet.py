"""CoResNet (Duta, Georgescu & Ionescu, "Contextual Convolutional Neural Networks", ICCV Workshops 2021,
arXiv 2108.07387).

CoResNet-50 as in the authors' ``coresnet50`` (iduta/coconv): ResNet-50 with the stride on the 3x3 (7x7 stem,
strided 1x1 + BN shortcuts) whose bottleneck 3x3 convolutions are CoConvs with 4, 3, 2 and 1 levels in the four
stages (dilations 1..L, channel shares 1/4 x4; 1/2, 1/4, 1/4; 1/2, 1/2; plain conv).  In the last block of every
stage the final BatchNorm is applied after the residual addition (the authors' ``bn_end_stage``), which moves no
parameter and no multiply-add.
"""
from __future__ import annotations

import torch

from visionblocks.blocks.conv import CoConv
from visionblocks.layers import ConvNormAct, LayerType
from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet, build_resnet

__all__ = ["CoBottleneck", "coconv_mid_layer", "coconv_resnet50"]

_PAPER = "Duta et al., Contextual Convolutional Neural Networks, ICCV Workshops 2021"
_URL = "https://arxiv.org/abs/2108.07387"


class CoBottleneck(Bottleneck):
    """ResNet bottleneck whose last BatchNorm can follow the residual addition (``bn_after_add``)."""

    def __init__(self, *args, bn_after_add: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.bn_after_add = bn_after_add
        self.conv3.fusable = not bn_after_add  # its BatchNorm follows the addition: not foldable into conv3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.bn_after_add:
            return super().forward(x)
        y = self.attn(self.conv3.conv(self.conv2(self.conv1(x))))
        return self.act(self.conv3.bn(self.drop_path(y) + self.shortcut(x)))


def coconv_mid_layer(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                     act_layer: LayerType = "relu", stage: int = 0,
                     levels_per_stage: tuple[int, ...] = (4, 3, 2, 1)) -> ConvNormAct:
    """CoResNet's middle-layer hook: a 3x3 CoConv -> BN -> activation with ``levels_per_stage[stage]`` levels
    (the last entry for any later stage)."""
    levels = levels_per_stage[min(stage, len(levels_per_stage) - 1)]
    return ConvNormAct(in_channels, out_channels, 3, stride, groups=groups, act_layer=act_layer,
                       conv_layer=CoConv.from_conv_args, levels=levels)


@register_model("coconv_resnet50", paper=_PAPER, url=_URL, paper_params=25.56, paper_macs=4.09,
                test_input_size=(32, 32))
def coconv_resnet50(**kwargs) -> ResNet:
    """CoResNet-50: 25.56 M params, 4.09 GFLOPs (multiply-adds) at 224x224, as ResNet-50 (stride on the 3x3)."""
    return build_resnet(CoBottleneck, (3, 4, 6, 3), kwargs, mid_layer=coconv_mid_layer, stride_3x3=True,
                        last_block_kwargs={"bn_after_add": True})
