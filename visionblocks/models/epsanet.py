"""EPSANet (Zhang et al., EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional Neural
Network, 2021, arXiv 2105.14447).

ResNet-50 whose every bottleneck 3x3 convolution is replaced by the PSA module (followed by the bottleneck's
BN-ReLU), with the downsampling stride on the PSA module as in the authors' code.  EPSANet(Small) uses kernels
3, 5, 7, 9 with groups 1, 4, 8, 16.
"""
from __future__ import annotations

from visionblocks.blocks.attention import PyramidSplitAttention
from visionblocks.layers import LayerType, NormAct
from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet, build_resnet

__all__ = ["epsanet50_small", "psa_mid_layer"]


def psa_mid_layer(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                  act_layer: LayerType = "relu", stage: int = 0, kernel_sizes: tuple[int, ...] = (3, 5, 7, 9),
                  conv_groups: tuple[int, ...] = (1, 4, 8, 16)) -> NormAct:
    """EPSANet's middle-layer hook: PSA module -> BN -> activation (the stage is not used)."""
    if groups != 1:
        raise ValueError(f"EPSA bottlenecks take no ResNeXt groups (got groups={groups}); set the PSA "
                         f"branch groups with conv_groups")
    psa = PyramidSplitAttention(in_channels, out_channels, stride=stride, kernel_sizes=kernel_sizes,
                                groups=conv_groups)
    return NormAct(psa, out_channels, act_layer=act_layer)


@register_model("epsanet50_small", paper="Zhang et al., EPSANet: An Efficient Pyramid Squeeze Attention Block on "
                "Convolutional Neural Network, 2021", url="https://arxiv.org/abs/2105.14447", paper_params=22.56,
                paper_macs=3.62, test_input_size=(64, 64))
def epsanet50_small(**kwargs) -> ResNet:
    """EPSANet-50 (Small): 22.56 M params, 3.62 GFLOPs (multiply-adds) at 224x224 (Zhang et al. Table;
    ours: 22.562 M, 3.598 G)."""
    return build_resnet(Bottleneck, (3, 4, 6, 3), kwargs, mid_layer=psa_mid_layer, stride_3x3=True)
