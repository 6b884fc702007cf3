"""Oct-ResNet (Chen et al., "Drop an Octave: Reducing Spatial Redundancy in Convolutional Neural Networks with
Octave Convolution", ICCV 2019, arXiv 1904.05049).

Oct-ResNet-50 with ``alpha = 0.5``: every convolution of ResNet-50 after the 7x7 stem is an octave convolution
(each followed by BatchNorm on the high and on the low part).  The first block's 1x1 convolutions split the stem's
features (``alpha_in = 0 -> alpha_out = 0.5``); the first block of the last stage merges them back
(``alpha_in = 0.5 -> alpha_out = 0``) and the last stage is single-frequency (``alpha = 0``), as in the paper's
ImageNet models (and the PyTorch port d-li14/octconv.pytorch).  The stride is on the 3x3 convolution: a stride-2
octave convolution average-pools its input first (Sec. 3.3); shortcuts that change shape are 1x1 octave
convolutions + BN.  Stochastic depth (``drop_path_rate``, linear ramp) drops a block's residual branch, its high
and low parts together.

Features (``feature_info``): the stem convolution (reduction 2), then each stage (4, 8, 16, 32).  A stage of
octave convolutions outputs a (high, low) pair, the low part at half the resolution: its feature map is the
high part with the low part (nearest-neighbour upsampled to the high part's size) concatenated after it, all
``4 planes`` channels at the high part's reduction; the last stage is single-frequency.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.blocks.conv import OctaveConv
from visionblocks.features import FeatureInfo
from visionblocks.layers import DropPath, LayerType, create_act, create_norm, init_weights
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase
from .resnet import resnet_stem

__all__ = ["OctConvNormAct", "OctBottleneck", "OctDropPath", "OctResNet", "octave_to_map", "octresnet50"]

_PAPER = ("Chen et al., Drop an Octave: Reducing Spatial Redundancy in Convolutional Neural Networks with Octave "
          "Convolution, ICCV 2019")
_URL = "https://arxiv.org/abs/1904.05049"


def _pair(x):
    return x if isinstance(x, tuple) else (x, None)


def octave_to_map(x) -> torch.Tensor:
    """A (high, low) octave pair as one (B, C_h + C_l, H, W) map: the low part, nearest-neighbour upsampled to the
    high part's size, concatenated after the high part.  A single tensor, or a pair without a low part, is
    returned as it is."""
    y_h, y_l = _pair(x)
    if y_l is None:
        return y_h
    return torch.cat([y_h, F.interpolate(y_l, size=y_h.shape[-2:], mode="nearest")], 1)


class OctDropPath(DropPath):
    """Stochastic depth of an octave residual branch: one keep/drop draw per sample for both the high and the
    low part of the ``(high, low)`` pair (the branch is dropped as a whole)."""

    def forward(self, x):
        y_h, y_l = x
        if self.drop_prob == 0.0 or not self.training:
            return y_h, y_l
        keep = 1.0 - self.drop_prob
        mask = y_h.new_empty((y_h.shape[0], 1, 1, 1)).bernoulli_(keep)
        return y_h * mask / keep, None if y_l is None else y_l * mask / keep


class OctConvNormAct(nn.Module):
    """Octave convolution, then BN (and the activation) on the high and the low part; returns ``(y_h, y_l)``.

    Not a :class:`~visionblocks.layers.ConvNormAct`: the convolution returns a (high, low) pair of tensors of
    different widths and sizes, and each part has its own BatchNorm.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 alpha_in: float = 0.5, alpha_out: float = 0.5, groups: int = 1, act_layer: LayerType = "relu"):
        super().__init__()
        self.conv = OctaveConv(in_channels, out_channels, kernel_size, stride, alpha_in, alpha_out, groups)
        self.bn_h = create_norm("batchnorm", self.conv.out_h)
        self.bn_l = create_norm("batchnorm", self.conv.out_l) if self.conv.out_l else None
        self.act = create_act(act_layer, inplace=True)

    def forward(self, x):
        y_h, y_l = self.conv(*_pair(x))
        y_h = self.act(self.bn_h(y_h))
        if self.bn_l is not None:
            y_l = self.act(self.bn_l(y_l))
        return y_h, y_l


class OctBottleneck(nn.Module):
    """ResNet bottleneck of octave convolutions; takes a tensor or a ``(high, low)`` pair, returns a pair."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, alpha_in: float = 0.5,
                 alpha_out: float = 0.5, groups: int = 1, base_width: int = 64, act_layer: LayerType = "relu",
                 drop_path: float = 0.0):
        super().__init__()
        width = int(planes * base_width / 64) * groups
        out = planes * self.expansion
        a = alpha_out  # inside the block every layer works at alpha_out
        self.conv1 = OctConvNormAct(in_channels, width, 1, 1, alpha_in, a, act_layer=act_layer)
        self.conv2 = OctConvNormAct(width, width, 3, stride, a, a, groups, act_layer=act_layer)
        self.conv3 = OctConvNormAct(width, out, 1, 1, a, a, act_layer=None)
        self.shortcut = None
        if stride != 1 or in_channels != out or alpha_in != alpha_out:
            self.shortcut = OctConvNormAct(in_channels, out, 1, stride, alpha_in, a, act_layer=None)
        self.act = create_act(act_layer, inplace=True)
        self.drop_path = OctDropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        y_h, y_l = self.drop_path(self.conv3(self.conv2(self.conv1(x))))
        s_h, s_l = self.shortcut(x) if self.shortcut is not None else _pair(x)
        y_h = self.act(y_h + s_h)
        y_l = self.act(y_l + s_l) if y_l is not None else None
        return y_h, y_l


class OctResNet(ModelBase):
    """ResNet of :class:`OctBottleneck` with low-frequency ratio ``alpha`` in all stages but the last.

    Args:
        layers: blocks per stage.
        alpha: the low-frequency fraction (paper's main setting: 0.5).
        num_classes, in_chans, drop_rate: classifier size, input channels, dropout before the classifier.
        drop_path_rate: stochastic depth of the blocks' residual branches (linear ramp).

    Features: see the module docstring (octave stages give their high and low parts as one map).
    """

    def __init__(self, layers=(3, 4, 6, 3), alpha: float = 0.5, num_classes: int = 1000, in_chans: int = 3,
                 groups: int = 1, width_per_group: int = 64, act_layer: LayerType = "relu", drop_rate: float = 0.0,
                 channels=(64, 128, 256, 512), drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        self.stem = resnet_stem(in_chans, 64, act_layer=act_layer)
        in_ch, a_prev, stages, idx, total = 64, 0.0, [], 0, sum(layers)
        features = [dict(num_chs=64, reduction=2, module="stem.0")]
        n_stages = len(layers)
        for s, (n, planes) in enumerate(zip(layers, channels)):
            a_stage = alpha if s < n_stages - 1 else 0.0
            blocks = []
            for i in range(n):
                blocks.append(OctBottleneck(in_ch, planes, 2 if (i == 0 and s > 0) else 1, a_prev, a_stage, groups,
                                            width_per_group, act_layer, drop_path_rate * idx / max(1, total - 1)))
                in_ch, a_prev, idx = planes * OctBottleneck.expansion, a_stage, idx + 1
            stages.append(nn.Sequential(*blocks))
            features.append(dict(num_chs=in_ch, reduction=2 ** (s + 2), module=f"stages.{s}"))
        self.stages = nn.Sequential(*stages)
        self.feature_info = FeatureInfo(features)
        self.feature_plan = [["stem.0"], ["stem.1", "stages.0"]] + [[f"stages.{s}"] for s in range(1, n_stages)]
        self.num_features = in_ch
        self.head = ClassifierHead(in_ch, num_classes, drop_rate)
        init_weights(self, conv="kaiming", conv_bias=False)

    def feature_to_nchw(self, index: int, x) -> torch.Tensor:
        return octave_to_map(x)

    def forward_final(self, x) -> torch.Tensor:
        """The last stage's output (single-frequency: its high part) as a map."""
        return octave_to_map(x)


@register_model("octresnet50", paper=_PAPER, url=_URL, paper_params=25.6, paper_macs=2.4, test_input_size=(32, 32))
def octresnet50(**kwargs) -> OctResNet:
    """Oct-ResNet-50 (alpha = 0.5): 25.6 M params, 2.4 GFLOPs at 224x224 (Chen et al., Table 3)."""
    kwargs.setdefault("alpha", 0.5)
    return OctResNet((3, 4, 6, 3), **kwargs)
