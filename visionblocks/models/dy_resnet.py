"""DY-ResNet-18 (Chen et al., Dynamic Convolution: Attention over Convolution Kernels, CVPR 2020,
arXiv 1912.03458): ResNet-18 whose convolutions are dynamic convolutions.

Every 3x3 convolution of the basic blocks is a :class:`~visionblocks.blocks.conv.dynamic_conv.DynamicConv`
with K=4 kernels (attention: GAP -> FC(C/4) -> ReLU -> FC(K) -> softmax(z / tau)), no bias (BatchNorm
follows); the stem convolution (as in the paper, "except the first layer") and the classifier are static.
The temperature starts at 30 and is annealed to 1 over the first 10 epochs:
``set_dynamic_conv_temperature(model, dynamic_conv_temperature(epoch))``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.blocks.conv.dynamic_conv import DynamicConv
from visionblocks.layers import DropPath, create_act
from visionblocks.registry import register_model

from .resnet import ResNet, make_shortcut

__all__ = ["DyBasicBlock", "dy_resnet18"]


class DyConvBN(nn.Sequential):
    """DynamicConv (no bias) -> BatchNorm -> activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 num_kernels: int = 4, act_layer="relu"):
        super().__init__()
        self.conv = DynamicConv(in_channels, out_channels, kernel_size, stride, bias=False, num_kernels=num_kernels)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = create_act(act_layer, inplace=True)


class DyBasicBlock(nn.Module):
    """ResNet basic block with two dynamic 3x3 convolutions (DY-ResNet)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64,
                 attn_layer=None, act_layer="relu", drop_path: float = 0.0, avg_down: bool = False,
                 num_kernels: int = 4, **_):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("DyBasicBlock supports only groups=1 and base_width=64")
        self.conv1 = DyConvBN(in_channels, planes, 3, stride, num_kernels, act_layer)
        self.conv2 = DyConvBN(planes, planes, 3, 1, num_kernels, None)
        self.attn = attn_layer(planes) if attn_layer else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.shortcut = make_shortcut(in_channels, planes, stride, avg_down)
        self.act = create_act(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.conv2(self.conv1(x)))
        return self.act(self.drop_path(y) + self.shortcut(x))


@register_model("dy_resnet18", paper="Chen et al., Dynamic Convolution: Attention over Convolution Kernels, CVPR 2020",
                url="https://arxiv.org/abs/1912.03458", paper_params=44.77, paper_macs=1.85, test_input_size=(32, 32),
                family="resnet",
                paper_note="Chen et al. print parameter counts in units of 2^20: their static ResNet-18 '11.1M' is "
                "11.69e6 / 2^20 = 11.15 and ResNet-10 '5.2M' is 5.42e6 / 2^20 = 5.17; DY-ResNet-18's '42.7M' is thus "
                "42.7 * 2^20 = 44.77e6 parameters, which we compare with (ours: 44.93e6). A decimal 42.7e6 is impossible "
                "at K=4: the sixteen 3x3 kernels of ResNet-18 alone hold 10.985e6 weights, 43.94e6 when each is "
                "replaced by 4 kernels. Multiply-adds are decimal (ResNet-18: 1.81 G, DY-ResNet-18: 1.85 G; ours "
                "1.858 G).")
def dy_resnet18(**kwargs) -> ResNet:
    """DY-ResNet-18 (K=4): 42.7 "M" params (= 44.77e6, the paper counts in units of 2^20), 1.85 G multiply-adds
    at 224x224 (Chen et al.)."""
    return ResNet(DyBasicBlock, (2, 2, 2, 2), **kwargs)
