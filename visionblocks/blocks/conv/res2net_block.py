"""Res2Net bottleneck (Gao et al., "Res2Net: A New Multi-scale Backbone Architecture", TPAMI 2021,
arXiv 1904.01169).

A 1x1 convolution (BN, ReLU) gives ``s`` (``scale``) splits ``x_1..x_s`` of ``w`` channels each
(``w = floor(planes * base_width / 64) * groups``, ``planes = out_channels / 4``).  The hierarchy follows the
paper's Eq. 1, **starting from the second split** (``x_1`` is passed through)::

    y_1 = x_1,   y_2 = K_2(x_2),   y_i = K_i(x_i + y_{i-1})  for 2 < i <= s

with ``K_i`` a 3x3 conv-BN-ReLU; then ``concat(y_1..y_s)``, a 1x1 conv-BN to ``out_channels``, the residual
addition and ReLU.  In a block that changes the resolution or the width ("stage" blocks, the first of each
ResNet stage) there is no cascade (``y_i = K_i(x_i)``, strided) and ``y_1 = AvgPool3x3(x_1)`` with the stride, as
in the authors' code.  (The authors' code passes the *last* split through instead of the first; the two layouts
are the same layer up to a permutation of the splits, which the 1x1 convolutions absorb.)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    square_conv_geometry,
    ConvNormAct, DropPath, LayerType, check_nchw, check_positive_int, create_act, create_attn,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block


__all__ = ["Res2NetBlock"]


@register_block("res2net_block", family="conv", layout="conv",
                paper="Gao et al., Res2Net: A New Multi-scale Backbone Architecture, TPAMI 2021",
                url="https://arxiv.org/abs/1904.01169",
                example=Example(args=(64, 256, 3), kwargs={"base_width": 26, "scale": 4},
                                input_shape=(2, 64, 14, 14)))
@validated()
class Res2NetBlock(nn.Module):
    """Res2Net bottleneck with its residual connection (expansion 4).

    Args:
        in_channels, out_channels: block input and output channels (``out_channels`` divisible by 4).
        kernel_size: kernel of the split convolutions (paper: 3), odd.
        stride: stride of the split convolutions and of the pooled first split.
        base_width: w for 64 planes (paper: 26 for res2net50_26w_4s).
        scale: number of splits s >= 2 (paper: 4).
        groups: cardinality of the split convolutions (Res2NeXt; Res2Net: 1).
        stage_type: ``"stage"`` (no cascade, pooled first split) or ``"normal"``; default: ``"stage"`` exactly
            when ``stride > 1`` or ``in_channels != out_channels``, as in the paper's networks.
        attn_layer: attention inserted before the addition (SENet position): a registered ``nchw`` block name
            (``"se"``...), a class or factory taking ``channels``, or ``None`` (paper: none).
        attn_kwargs: further keyword arguments of the attention.
        act_layer: activation (paper: ReLU).
        drop_path: stochastic depth rate of the residual branch.
        avg_down: average-pool shortcut (ResNet-D, Res2Net v1b) instead of a strided 1x1 convolution.
    """

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 base_width: int = 26, scale: int = 4, groups: int = 1, stage_type: str | None = None,
                 attn_layer: LayerType = None, attn_kwargs: dict | None = None, act_layer: LayerType = "relu",
                 drop_path: float = 0.0, avg_down: bool = False):
        super().__init__()
        kernel_size, stride, padding = square_conv_geometry(in_channels, out_channels, kernel_size, stride)
        self.in_channels, self.out_channels = in_channels, out_channels
        check_positive_int("base_width", base_width)
        check_positive_int("groups", groups)
        if check_positive_int("scale", scale) < 2:
            raise ValueError(f"scale must be >= 2 (scale=1 is a plain bottleneck), got {scale}")
        if out_channels % self.expansion:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by the expansion ({self.expansion})")
        if stage_type is None:
            stage_type = "stage" if stride > 1 or in_channels != out_channels else "normal"
        if stage_type not in ("stage", "normal"):
            raise ValueError(f"stage_type must be 'stage' or 'normal', got {stage_type!r}")
        if stage_type == "normal" and stride > 1:
            raise ValueError("a 'normal' Res2Net block cannot have stride > 1 (use stage_type='stage')")
        width = (out_channels // self.expansion) * base_width // 64 * groups
        if width == 0 or width % groups:
            raise ValueError(f"the split width ({width}) must be a positive multiple of groups ({groups})")
        self.scale, self.width, self.stage_type = scale, width, stage_type
        self.conv1 = ConvNormAct(in_channels, width * scale, 1, act_layer=act_layer)
        self.convs = nn.ModuleList(ConvNormAct(width, width, kernel_size, stride, padding, groups=groups,
                                               act_layer=act_layer) for _ in range(scale - 1))
        self.pool = nn.AvgPool2d(kernel_size, stride, padding) if stage_type == "stage" else nn.Identity()
        self.conv3 = ConvNormAct(width * scale, out_channels, 1, act_layer=None)
        self.attn = create_attn(attn_layer, out_channels, **(attn_kwargs or {}))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif avg_down and stride > 1:
            self.shortcut = nn.Sequential(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
                                          ConvNormAct(in_channels, out_channels, 1, act_layer=None))
        else:
            self.shortcut = ConvNormAct(in_channels, out_channels, 1, stride, act_layer=None)
        self.act = create_act(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        xs = self.conv1(x).split(self.width, dim=1)
        ys = [self.pool(xs[0])]
        y = None
        for i, conv in enumerate(self.convs, start=1):
            y = conv(xs[i] if y is None or self.stage_type == "stage" else xs[i] + y)
            ys.append(y)
        out = self.attn(self.conv3(torch.cat(ys, dim=1)))
        return self.act(self.drop_path(out) + self.shortcut(x))
