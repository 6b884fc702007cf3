"""ResNeSt (Zhang et al., "ResNeSt: Split-Attention Networks", CVPR Workshops 2022, arXiv 2004.08955).

ResNeSt-50 (paper Sec. 4-5, authors' zhanghang1989/ResNeSt ``resnest50``): ResNet-50 layout with a deep stem
(three 3x3 convolutions, 32-32-64 channels), average-pool shortcuts (``avg_down``), and every bottleneck 3x3
replaced by a split-attention convolution (radix 2, cardinality 1, width 64); a strided block applies the stride
with a 3x3 average pooling *after* the split-attention convolution ("avd", ``avd_first=False``).
"""
from __future__ import annotations

import torch.nn as nn

from visionblocks.blocks.conv import SplitAttentionConv
from visionblocks.layers import LayerType
from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet, build_resnet

__all__ = ["resnest50", "splat_mid_layer"]

_PAPER = "Zhang et al., ResNeSt: Split-Attention Networks, CVPR Workshops 2022"
_URL = "https://arxiv.org/abs/2004.08955"


def splat_mid_layer(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                    act_layer: LayerType = "relu", stage: int = 0, radix: int = 2, avd: bool = True) -> nn.Module:
    """ResNeSt's middle-layer hook: a 3x3 split-attention convolution (the stage is not used); with ``avd`` a
    stride is a 3x3 average pool after it."""
    if avd and stride > 1:
        return nn.Sequential(SplitAttentionConv(in_channels, out_channels, 3, 1, groups=groups, radix=radix,
                                                act_layer=act_layer),
                             nn.AvgPool2d(3, stride, padding=1))
    return SplitAttentionConv(in_channels, out_channels, 3, stride, groups=groups, radix=radix, act_layer=act_layer)


@register_model("resnest50", paper=_PAPER, url=_URL, paper_params=27.5, paper_macs=5.39, test_input_size=(32, 32))
def resnest50(**kwargs) -> ResNet:
    """ResNeSt-50 (radix 2, 1s64x): 27.5 M params, 5.39 GFLOPs at 224x224 (Zhang et al., Table 3/5)."""
    return build_resnet(Bottleneck, (3, 4, 6, 3), kwargs, mid_layer=splat_mid_layer, stem_type="deep", stem_width=64,
                        avg_down=True, stride_3x3=True)
