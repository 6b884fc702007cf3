"""GhostNet (Han et al., GhostNet: More Features from Cheap Operations, CVPR 2020, arXiv 1911.11907).

GhostNet 1.0x (Table 1): a 3x3 stride-2 stem (16), 16 Ghost bottlenecks ``(kernel, expansion, out, SE, stride)``,
a 1x1 convolution to 960, global pooling, a 1x1 convolution to 1280 with ReLU (on the pooled features, no
BN), dropout 0.2 and the classifier.  A Ghost bottleneck is ghost module (ReLU) -> [depthwise kxk stride 2 +
BN when strided] -> [SE] -> ghost module (linear), plus a shortcut that is the identity, or depthwise kxk
(stride s) + BN + 1x1 conv + BN when the shape changes.  SE follows the authors' code: reduction to
``make_divisible(C / 4, 4)`` channels, ReLU, hard-sigmoid gate.  Channel counts are rounded to multiples of 4.
Stochastic depth (``drop_path_rate``, linear ramp) drops a bottleneck's residual branch (both ghost modules).

Features (``feature_info``): the last bottleneck at each resolution, reductions 2, 4, 8, 16, 32 (16, 24, 40, 112,
160 channels); the 1x1 convolution to 960 follows the last feature (``forward_final``), and the pooled 1x1
convolution to 1280 (+ ReLU) belongs to the head.  As timm's: ``num_features`` is 960 (what ``forward_features``
returns), ``head_hidden_size`` 1280 (the pre-logits, what ``reset_classifier(0)`` makes ``forward`` return).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.blocks.conv import GhostConv
from visionblocks.features import FeaturePlan
from visionblocks.layers import (
    ConvNormAct, DropPath, LayerType, check_nchw, create_attn, deprecated_se_ratio, make_divisible, se_kwargs,
)
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase

__all__ = ["GhostBottleneck", "GhostNet", "ghostnet_100"]

# (kernel, expansion (mid channels), out channels, se_ratio, stride) per block, GhostNet Table 1
GHOSTNET_CFG = (
    (3, 16, 16, 0, 1),
    (3, 48, 24, 0, 2), (3, 72, 24, 0, 1),
    (5, 72, 40, 0.25, 2), (5, 120, 40, 0.25, 1),
    (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1),
    (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1),
    (5, 672, 160, 0.25, 2), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1),
)


class GhostBottleneck(nn.Module):
    """Ghost bottleneck (GhostNet Fig. 3): expand with a ghost module, optional strided depthwise conv and
    attention, project with a linear ghost module; identity or depthwise+pointwise shortcut.

    Args:
        in_channels, mid_channels, out_channels: input, expanded and output channels.
        kernel_size, stride: the depthwise convolution (stride 1 or 2).
        attn_layer: attention on the expanded features (a registered ``nchw`` block name, a class or factory
            taking ``channels``, or ``None``).  ``"se"`` is GhostNet's SE: ``make_divisible(mid / 4, 4)`` wide,
            ReLU, hard-sigmoid gate (``attn_kwargs`` override these).
        attn_kwargs: further keyword arguments of the attention.
        drop_path: stochastic depth of the residual branch.

    ``se_ratio=r`` (deprecated) is ``attn_layer="se"`` ``make_divisible(mid * r, 4)`` wide, or none for 0.
    """

    @deprecated_se_ratio(lambda a, r: make_divisible(a["mid_channels"] * r, 4))
    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, attn_layer: LayerType = None, attn_kwargs: dict | None = None,
                 drop_path: float = 0.0):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.in_channels = in_channels
        self.ghost1 = GhostConv(in_channels, mid_channels, act_layer="relu")
        self.conv_dw = (ConvNormAct(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act_layer=None)
                        if stride > 1 else nn.Identity())
        self.attn = create_attn(attn_layer, mid_channels, **se_kwargs(
            attn_layer, attn_kwargs, make_divisible(mid_channels / 4, 4), act_layer="relu", gate_layer="hard_sigmoid"))
        self.ghost2 = GhostConv(mid_channels, out_channels, act_layer=None)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvNormAct(in_channels, in_channels, kernel_size, stride, groups=in_channels, act_layer=None),
                ConvNormAct(in_channels, out_channels, 1, act_layer=None))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        return self.drop_path(self.ghost2(self.attn(self.conv_dw(self.ghost1(x))))) + self.shortcut(x)


class GhostNet(ModelBase):
    """GhostNet with width multiplier ``width``.

    Args:
        cfg: ``(kernel, mid, out, se_ratio, stride)`` per bottleneck.
        num_classes, in_chans: classifier size (0 for none) and input channels.
        width: channel multiplier (1.0 for GhostNet 1.0x).
        drop_rate: dropout before the classifier (0.2).
        drop_path_rate: stochastic depth of the bottlenecks' residual branches (linear ramp).

    The head (``forward_head``) is global pooling, a 1x1 convolution to 1280 with ReLU, dropout and the
    classifier ``head.fc``; ``reset_classifier(n, global_pool)`` changes the pooling before that convolution.
    """

    head_layouts = {4: (1, "(B, C, H, W)")}  # the map: the head pools it before its 1280 convolution
    final_is_norm = False  # forward_final is the 1x1 convolution to 960 channels

    def __init__(self, cfg=GHOSTNET_CFG, num_classes: int = 1000, in_chans: int = 3, width: float = 1.0,
                 drop_rate: float = 0.2, drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        stem = make_divisible(16 * width, 4)
        self.stem = ConvNormAct(in_chans, stem, 3, 2)
        blocks, in_ch, plan, net_stride = [], stem, FeaturePlan(["stem"]), 2
        for i, (k, mid, out, se, s) in enumerate(cfg):
            mid_c, out_c = make_divisible(mid * width, 4), make_divisible(out * width, 4)
            se_width = {"rd_channels": make_divisible(mid_c * se, 4)} if se > 0 else None
            blocks.append(GhostBottleneck(in_ch, mid_c, out_c, k, s, "se" if se > 0 else None, se_width,
                                          drop_path=drop_path_rate * i / max(1, len(cfg) - 1)))
            in_ch, net_stride = out_c, net_stride * s
            plan.add(f"blocks.{i}")
            if i == len(cfg) - 1 or cfg[i + 1][4] > 1:  # the last bottleneck at this resolution
                plan.end_feature(in_ch, net_stride)
        last = make_divisible(960 * width, 4)
        blocks.append(ConvNormAct(in_ch, last, 1))
        self.blocks = nn.Sequential(*blocks)
        self.feature_info, self.feature_plan = plan.feature_info(), plan.feature_plan
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(last, 1280, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.num_features = last
        self.head = ClassifierHead(1280, num_classes, drop_rate)

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """The 1x1 convolution to 960 channels after the last bottleneck."""
        return self.blocks[-1](x)

    def final_norm_to_map(self, x: torch.Tensor) -> torch.Tensor:
        return x  # a convolution, no norm: features keep their feature_info channels

    def prune_final(self) -> None:
        self.blocks[-1] = nn.Identity()

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier ``head.fc`` (0: none, ``forward`` returns the 1280 pre-logits); ``global_pool``
        (``"avg"``, ``"max"``) is the pooling before the 1280 convolution (``""``: none, the convolution and ReLU
        run on the map, for ``num_classes=0`` only)."""
        super().reset_classifier(num_classes, _head_pool(global_pool))
        self._set_pool(global_pool)

    def set_global_pool(self, global_pool: str) -> None:
        """The pooling before the 1280 convolution, as ``reset_classifier``'s ``global_pool``; classifier kept."""
        super().set_global_pool(_head_pool(global_pool))
        self._set_pool(global_pool)

    def _set_pool(self, global_pool: str | None) -> None:
        if global_pool is not None:
            self.pool = (nn.AdaptiveAvgPool2d(1) if global_pool == "avg" else nn.AdaptiveMaxPool2d(1)
                         if global_pool == "max" else nn.Identity())

    @property
    def head_hidden_size(self) -> int:
        """The pre-logits: the 1280 convolution's output (``num_features`` once pruned away with the head)."""
        return getattr(self.conv_head, "out_channels", self.num_features)

    def prune_head(self) -> None:
        self.conv_head, self.act = nn.Identity(), nn.Identity()  # the 1280 convolution belongs to the head

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        self.check_head_input(x)
        return self.head(self.act(self.conv_head(self.pool(x))), pre_logits=pre_logits)


def _head_pool(global_pool: str | None) -> str | None:
    """The head's own pooling when GhostNet pools before its 1280 convolution: it pools the 1x1 map again ("avg":
    the identity); "" and invalid values go to it to be checked."""
    return "avg" if global_pool in ("avg", "max") else global_pool


@register_model("ghostnet_100", paper="Han et al., GhostNet: More Features from Cheap Operations, CVPR 2020",
                url="https://arxiv.org/abs/1911.11907", paper_params=5.2, paper_macs=0.141, test_input_size=(32, 32))
def ghostnet_100(**kwargs) -> GhostNet:
    """GhostNet 1.0x: 5.2 M params, 141 M FLOPs (multiply-adds) at 224x224 (Han et al., Table 7)."""
    return GhostNet(GHOSTNET_CFG, width=1.0, **kwargs)
