"""RedNet (Li et al., Involution: Inverting the Inherence of Convolution for Visual Recognition, CVPR 2021,
arXiv 2103.06255): ResNet with involution.

Every bottleneck's 3x3 convolution is replaced by a 7x7 involution (16 channels per group, reduction 4)
followed by BN and ReLU, carrying the stride (the authors' "pytorch" style, stride on the middle layer);
the stem is conv3x3 (stride 2, 32) -> BN -> ReLU -> 3x3 involution -> BN -> ReLU -> conv3x3 (64) -> BN ->
ReLU, then the 3x3 stride-2 max-pool, as in the authors' code.  Depths: RedNet-26 (1, 2, 4, 1), RedNet-38
(2, 3, 5, 2), RedNet-50 (3, 4, 6, 3) bottlenecks.
"""
from __future__ import annotations

from functools import partial

from visionblocks.blocks.conv import Involution
from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet, build_resnet, conv_mid_layer, deep_stem

__all__ = ["rednet26", "rednet38", "rednet50"]

_PAPER = "Li et al., Involution: Inverting the Inherence of Convolution for Visual Recognition, CVPR 2021"
_URL = "https://arxiv.org/abs/2103.06255"


def _rednet(layers, kwargs) -> ResNet:
    """RedNet: stem and middle layers as the module docstring says; the last BN of every residual branch
    starts at zero, as the authors' code does (otherwise the generated kernels make eval-mode activations
    overflow)."""
    return build_resnet(Bottleneck, layers, kwargs, stride_3x3=True, zero_init_last=True,
                        stem_layer=partial(deep_stem, mid_conv_layer=Involution.from_conv_args),
                        mid_layer=partial(conv_mid_layer, kernel_size=7, conv_layer=Involution.from_conv_args))


def _reg(name: str, params: float, macs: float):
    return register_model(name, paper=_PAPER, url=_URL, paper_params=params, paper_macs=macs,
                          macs_rel_tol=0.05, test_input_size=(32, 32))


@_reg("rednet26", 9.2, 1.7)
def rednet26(**kwargs) -> ResNet:
    """RedNet-26: 9.2 M params, 1.7 GFLOPs (multiply-adds) at 224x224 (Li et al., Table 2)."""
    return _rednet((1, 2, 4, 1), kwargs)


@_reg("rednet38", 12.4, 2.2)
def rednet38(**kwargs) -> ResNet:
    """RedNet-38: 12.4 M params, 2.2 GFLOPs at 224x224 (Li et al., Table 2)."""
    return _rednet((2, 3, 5, 2), kwargs)


@_reg("rednet50", 15.5, 2.7)
def rednet50(**kwargs) -> ResNet:
    """RedNet-50: 15.5 M params, 2.7 GFLOPs at 224x224 (Li et al., Table 2)."""
    return _rednet((3, 4, 6, 3), kwargs)
