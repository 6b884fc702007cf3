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


_NOTE = ("The authors list SCNet-50 at 4.0 G multiply-adds (README of MCG-NKU/SCNet; 25.56 M params, which we "
         "match exactly). Counting only convolutions and the classifier, the network is ResNet-50 with the stride on "
         "the 3x3 (4.09 G) where each of the 13 unstrided 3x3 convolutions costs 3/4 + 1/64 of its plain cost "
         "(K1, K3, K4 at full resolution, K2 at 1/16) and each of the 3 strided ones 1/2 + 1 + 1/16 (K3 and K2 run "
         "before the stride): 4.09 - 13 x 0.0271 + 3 x 0.0650 = 3.93 G, and we count 3.938 G (the ceil-mode pooling "
         "of K2 adds a little at 7x7 and 14x14); the convolutions alone cannot reach 4.0 G, so the authors' figure "
         "counts more than multiply-adds of convolutions (or rounds up).")


@register_model("scnet50", paper=_PAPER, url=_URL, paper_params=25.56, paper_macs=4.0, paper_note=_NOTE,
                macs_rel_tol=0.02, test_input_size=(32, 32))
def scnet50(**kwargs) -> ResNet:
    """SCNet-50: 25.56 M params, 4.0 GFLOPs (multiply-adds, authors' count; 3.94 G counting convolutions only) at
    224x224 (Liu et al., MCG-NKU/SCNet)."""
    return build_resnet(Bottleneck, (3, 4, 6, 3), kwargs, mid_layer=sc_mid_layer, stride_3x3=True)
