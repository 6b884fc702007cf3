"""EPSANet (Zhang et al., EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional Neural
Network, 2021, arXiv 2105.14447).

ResNet-50 whose every bottleneck 3x3 convolution is replaced by the PSA module (followed by the bottleneck's
BN-ReLU), with the downsampling stride on the PSA module as in the authors' code.  EPSANet(Small) uses kernels
3, 5, 7, 9 with groups 1, 4, 8, 16.
"""
from __future__ import annotations

import torch.nn as nn

from visionblocks.blocks.attention.pyramid_split_attention import PyramidSplitAttention
from visionblocks.layers import create_act
from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet

__all__ = ["epsanet50_small", "PSAUnit"]


class PSAUnit(nn.Sequential):
    """PSA module -> BN -> ReLU: the middle unit of an EPSA bottleneck."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                 kernel_sizes=(3, 5, 7, 9), conv_groups=(1, 4, 8, 16)):
        if groups != 1:
            raise ValueError(f"EPSA bottlenecks take no ResNeXt groups (got groups={groups}); set the PSA "
                             f"branch groups with conv_groups")
        super().__init__()
        self.psa = PyramidSplitAttention(in_channels, out_channels, stride=stride, kernel_sizes=kernel_sizes,
                                         groups=conv_groups)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = create_act("relu", inplace=True)


@register_model("epsanet50_small", paper="Zhang et al., EPSANet: An Efficient Pyramid Squeeze Attention Block on "
                "Convolutional Neural Network, 2021", url="https://arxiv.org/abs/2105.14447", paper_params=22.56,
                paper_macs=3.62, paper_note="The paper's FLOPs counter also counts non-convolution operations "
                "(its ResNet-50 baseline reads 4.12 G where torch's flop counter, convolutions and matmuls only, "
                "gives 4.09 G); ours: 3.598 G, 0.6% below.", test_input_size=(64, 64), family="resnet")
def epsanet50_small(**kwargs) -> ResNet:
    """EPSANet-50 (Small): 22.56 M params, 3.62 GFLOPs (multiply-adds) at 224x224 (Zhang et al. Table;
    ours: 22.562 M, 3.598 G)."""
    kwargs.setdefault("stride_3x3", True)
    block_kwargs = dict(kwargs.pop("block_kwargs", None) or {})
    block_kwargs.setdefault("mid_layer", PSAUnit)
    return ResNet(Bottleneck, (3, 4, 6, 3), block_kwargs=block_kwargs, **kwargs)
