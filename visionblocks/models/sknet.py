"""SKNet-50 (Li et al., Selective Kernel Networks, CVPR 2019, arXiv 1903.06586).

ResNeXt-50 (32x4d) whose every 3x3 grouped convolution is replaced by an SK convolution with M = 2 (3x3 and
dilated 3x3 branches), G = 32, r = 16, L = 32 (Table 1).  The downsampling stride is on the SK convolution, as
in ResNeXt: this is what gives the paper's 4.47 GFLOPs (4.00 G with the stride on the first 1x1).
"""
from __future__ import annotations

from visionblocks.blocks.conv import SelectiveKernelConv
from visionblocks.layers import LayerType
from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet, build_resnet

__all__ = ["sk_mid_layer", "sk_resnet50"]


def sk_mid_layer(in_channels: int, out_channels: int, stride: int = 1, groups: int = 32,
                 act_layer: LayerType = "relu", stage: int = 0) -> SelectiveKernelConv:
    """SKNet's middle-layer hook: an SK convolution with the paper's M = 2, G = ``groups``, r = 16, L = 32 (the
    block's defaults) and the network's activation (the stage is not used)."""
    return SelectiveKernelConv(in_channels, out_channels, stride=stride, groups=groups, act_layer=act_layer)


@register_model("sk_resnet50", paper="Li et al., Selective Kernel Networks, CVPR 2019",
                url="https://arxiv.org/abs/1903.06586", paper_params=27.5, paper_macs=4.47,
                test_input_size=(64, 64))
def sk_resnet50(**kwargs) -> ResNet:
    """SKNet-50: 27.5 M params, 4.47 GFLOPs (multiply-adds) at 224x224 (Li et al. Table 1 / Table 2;
    ours: 27.480 M, 4.463 G)."""
    return build_resnet(Bottleneck, (3, 4, 6, 3), kwargs, groups=32, width_per_group=4, mid_layer=sk_mid_layer,
                        stride_3x3=True)
