"""SCNet (Liu et al., "Improving Convolutional Networks with Self-Calibrated Convolutions", CVPR 2020,
https://mmcheng.net/scconv/): ResNet-50 whose bottleneck 3x3 is a self-calibrated convolution.

As in the authors' ``SCBottleneck`` (MCG-NKU/SCNet): the first 1x1 gives ``planes`` channels (their two 1x1
convolutions of ``planes/2`` are one 1x1 split in halves), the middle layer is :class:`SelfCalibratedConv`
(stride on K1 and K4, pooling rate 4), then the 1x1 expansion; 7x7 stem, plain strided 1x1 shortcut.
"""
from __future__ import annotations

from visionblocks.blocks.conv import SelfCalibratedConv
from visionblocks.layers import LayerType
from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet, build_resnet

__all__ = ["sc_mid_layer", "scnet50"]

_PAPER = "Liu et al., Improving Convolutional Networks with Self-Calibrated Convolutions, CVPR 2020"
_URL = "https://mmcheng.net/scconv/"


def sc_mid_layer(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                 act_layer: LayerType = "relu", stage: int = 0) -> SelfCalibratedConv:
    """SCNet's middle-layer hook: a 3x3 self-calibrated convolution, pooling rate 4, ending with the network's
    activation (the stage is not used)."""
    return SelfCalibratedConv(in_channels, out_channels, 3, stride, pooling_r=4, groups=groups, act_layer=act_layer)


@register_model("scnet50", paper=_PAPER, url=_URL, paper_params=25.56, paper_macs=4.0,
                macs_rel_tol=0.02, test_input_size=(32, 32))
def scnet50(**kwargs) -> ResNet:
    """SCNet-50: 25.56 M params, 4.0 GFLOPs (multiply-adds, authors' count; 3.93 G counting convolutions only) at
    224x224 (Liu et al., MCG-NKU/SCNet)."""
    return build_resnet(Bottleneck, (3, 4, 6, 3), kwargs, mid_layer=sc_mid_layer, stride_3x3=True)
