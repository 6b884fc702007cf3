"""DY-ResNet-18 (Chen et al., Dynamic Convolution: Attention over Convolution Kernels, CVPR 2020,
arXiv 1912.03458): ResNet-18 whose convolutions are dynamic convolutions.

Every 3x3 convolution of the basic blocks is a :class:`~visionblocks.blocks.conv.dynamic_conv.DynamicConv`
with K=4 kernels (attention: GAP -> FC(C/4) -> ReLU -> FC(K) -> softmax(z / tau)), no bias (BatchNorm
follows); the stem convolution (as in the paper, "except the first layer") and the classifier are static.
The temperature starts at 30 and is annealed to 1 over the first 10 epochs:
``set_dynamic_conv_temperature(model, dynamic_conv_temperature(epoch))``.
"""
from __future__ import annotations

from functools import partial

from visionblocks.blocks.conv import DynamicConv
from visionblocks.registry import register_model

from .resnet import BasicBlock, ResNet, build_resnet, conv_mid_layer

__all__ = ["dy_resnet18"]


@register_model("dy_resnet18", paper="Chen et al., Dynamic Convolution: Attention over Convolution Kernels, CVPR 2020",
                url="https://arxiv.org/abs/1912.03458", paper_params=44.77, paper_macs=1.85, test_input_size=(32, 32))
def dy_resnet18(num_kernels: int = 4, **kwargs) -> ResNet:
    """DY-ResNet-18 (K=4): 42.7 "M" params (= 44.77e6, the paper counts in units of 2^20), 1.85 G multiply-adds
    at 224x224 (Chen et al.).  Every basic-block unit is a 3x3 DynamicConv of ``num_kernels`` kernels -> BN ->
    activation."""
    dy_conv = partial(conv_mid_layer, conv_layer=DynamicConv, num_kernels=num_kernels)
    return build_resnet(BasicBlock, (2, 2, 2, 2), kwargs, mid_layer=dy_conv)
