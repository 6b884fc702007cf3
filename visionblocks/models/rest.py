"""ResT: An Efficient Transformer for Visual Recognition (Zhang & Yang, NeurIPS 2021, arXiv 2105.13677).

Four stages of pre-norm transformer blocks ``x + EMSA(LN(x))``, ``x + MLP(LN(x))`` (MLP ratio 4, GELU) on
feature maps of stride 4, 8, 16, 32.  The stem is conv7x7/2-BN-ReLU + maxpool3x3/2, each later stage starts
with a patch embedding conv3x3/2 + BN; positions are
encoded by pixel attention ``PA(x) = x * sigmoid(DWConv3x3(x))`` after the stem and every patch embedding.
EMSA (``visionblocks.blocks.attention.emsa``) uses heads (1, 2, 4, 8), spatial reduction (8, 4, 2, 1) and the
head-mixing 1x1 conv + instance norm.  Final LayerNorm, global average pooling, linear classifier.
The layer details follow the authors' code (wofmanaf/ResT).  Any input size works (no size-tied weights).

Stem: the authors' repository builds the models with a three-conv stem (``BasicStem``: conv3x3/2-BN-ReLU,
conv3x3-BN-ReLU, conv3x3/2) but also defines ``Stem`` (conv7x7/2-BN-ReLU + maxpool).  The paper's parameter
counts (10.49 / 13.66 / 30.28 M) are reproduced to 0.01 M only with the 7x7 ``Stem`` (the three-conv stem
gives 10.51 / 13.68 / 30.33 M and 0.13-0.23 GMACs more), so the paper's reported models use it and so do we by
default; ``stem="basic"`` builds the repository's ``BasicStem`` (its checkpoints then load: see docs/weights.md).
Evaluated at 224 with crop ratio 0.875, bicubic, ImageNet mean/std (the authors' code).

Features (``feature_info``): one per stage at reductions 4, 8, 16, 32, as (B, C, H, W) maps.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.blocks.attention import EMSA
from visionblocks.features import FeatureInfo
from visionblocks.layers import ConvNormAct, MetaFormerBlock, init_weights, is_plain
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase

__all__ = ["ResT", "ResTBlock", "PixelAttention", "rest_lite", "rest_small", "rest_base"]

_PAPER = "Zhang & Yang, ResT: An Efficient Transformer for Visual Recognition, NeurIPS 2021"
_URL = "https://arxiv.org/abs/2105.13677"
_STEMS = ("conv7x7", "basic")
_DATA = {"crop_pct": 0.875, "interpolation": "bicubic"}  # ImageNet mean/std (wofmanaf/ResT)


class PixelAttention(nn.Module):
    """ResT's positional encoding: ``x * sigmoid(DWConv3x3(x))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class ResTBlock(MetaFormerBlock):
    """``x + EMSA(LN(x))``, ``x + MLP(LN(x))`` on tokens (B, H W, C); ``forward(x, H, W)``."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, apply_transform: bool = True):
        super().__init__(dim, EMSA(dim, num_heads, sr_ratio, qkv_bias=qkv_bias, apply_transform=apply_transform),
                         mlp_ratio, drop_path=drop_path)

    def mix_tokens(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """EMSA on the tokens: its token form, or the block called on the (B, C, H, W) view when it is hooked or
        replaced (layers.is_plain)."""
        if is_plain(self.attn, EMSA):
            return self.attn.forward_tokens(x, H, W)
        B, N, C = x.shape
        return self.attn(x.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)


class ResTStage(nn.Module):
    """Patch embedding (stem for the first stage) + PA, then transformer blocks; (B, C, H, W) in and out."""

    def __init__(self, embed: nn.Module, blocks: list[nn.Module], dim: int):
        super().__init__()
        self.embed = embed
        self.pos = PixelAttention(dim)
        self.blocks = nn.ModuleList(blocks)

    def forward_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.pos(self.embed(x))
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        for blk in self.blocks:
            x = blk(x, H, W)
        return x, H, W

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, H, W = self.forward_tokens(x)
        B, N, C = x.shape  # (a reshape, not unflatten: traced, unflatten fixed the batch of every later stage)
        return x.transpose(1, 2).reshape(B, C, H, W)


class ResT(ModelBase):
    """ResT backbone + classifier.

    Args:
        embed_dims, num_heads, depths, sr_ratios, mlp_ratio: the stage configuration.
        qkv_bias: biases of the EMSA projections (ResT: True).
        apply_transform: EMSA's head-mixing conv + instance norm (ResT: True).
        num_classes, in_chans: classifier size (0 for none) and input channels.
        drop_rate, drop_path_rate: dropout before the classifier, stochastic depth (linear ramp over the blocks).
        stem: ``"conv7x7"`` (the paper's: conv7x7/2-BN-ReLU + maxpool) or ``"basic"`` (the authors' repository's
            three 3x3 convolutions, for their released checkpoints); positions are encoded after either.

    Features (``feature_info``): one per stage, (B, C, H / r, W / r) maps at r = 4, 8, 16, 32.
    """

    def __init__(self, embed_dims=(64, 128, 256, 512), num_heads=(1, 2, 4, 8), depths=(2, 2, 2, 2),
                 sr_ratios=(8, 4, 2, 1), mlp_ratio: float = 4.0, qkv_bias: bool = True, apply_transform: bool = True,
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 stem: str = "conv7x7"):
        super().__init__()
        if stem not in _STEMS:
            raise ValueError(f"stem must be one of {_STEMS}, got {stem!r}")
        self.in_chans = in_chans
        self.num_features = embed_dims[-1]
        total = sum(depths)
        dpr = [drop_path_rate * i / max(1, total - 1) for i in range(total)]
        c0 = embed_dims[0]
        if stem == "conv7x7":  # the paper's (the authors' Stem class)
            stem = nn.Sequential(ConvNormAct(in_chans, c0, 7, 2), nn.MaxPool2d(3, 2, 1))
        else:  # the authors' BasicStem: conv3x3/2-BN-ReLU, conv3x3-BN-ReLU, conv3x3/2 (C0/2 hidden channels)
            stem = nn.Sequential(ConvNormAct(in_chans, c0 // 2, 3, 2), ConvNormAct(c0 // 2, c0 // 2, 3, 1),
                                 nn.Conv2d(c0 // 2, c0, 3, 2, 1, bias=False))
        stages, cur = [], 0
        for i, dim in enumerate(embed_dims):
            embed = stem if i == 0 else ConvNormAct(embed_dims[i - 1], dim, 3, 2, bias=True, act_layer=None)
            blocks = [ResTBlock(dim, num_heads[i], sr_ratios[i], mlp_ratio, qkv_bias, dpr[cur + j], apply_transform)
                      for j in range(depths[i])]
            stages.append(ResTStage(embed, blocks, dim))
            cur += depths[i]
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(embed_dims[-1])
        self.head = ClassifierHead(embed_dims[-1], num_classes, drop_rate)
        init_weights(self, conv="trunc_normal", linear="trunc_normal", std=0.02, conv_bias=False)
        self.feature_info = FeatureInfo([dict(num_chs=dim, reduction=4 * 2 ** i, module=f"stages.{i}")
                                         for i, dim in enumerate(embed_dims)])
        self.feature_plan = [[f"stages.{i}"] for i in range(len(embed_dims))]

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """The final LayerNorm over the channels of the last stage's map."""
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def prune_final(self) -> None:
        self.norm = nn.Identity()


def _rest(num_classes: int, in_chans: int, **kwargs) -> ResT:
    return ResT(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("rest_lite", paper=_PAPER, url=_URL, data_cfg=_DATA,
                paper_params=10.49, paper_macs=1.4, test_input_size=(64, 64),
                macs_rel_tol=0.05)
def rest_lite(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResT:
    """ResT-Lite: dims (64, 128, 256, 512), depths (2, 2, 2, 2). Paper: 10.49 M params, 1.4 GFLOPs at 224
    (ours: 10.49 M, 1.47 GMACs incl. attention products)."""
    return _rest(num_classes, in_chans, embed_dims=(64, 128, 256, 512), depths=(2, 2, 2, 2), **kwargs)


@register_model("rest_small", paper=_PAPER, url=_URL, data_cfg=_DATA,
                paper_params=13.66, paper_macs=1.9, test_input_size=(64, 64),
                macs_rel_tol=0.07)
def rest_small(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResT:
    """ResT-Small: dims (64, 128, 256, 512), depths (2, 2, 6, 2). Paper: 13.66 M params, 1.9 GFLOPs at 224
    (ours: 13.66 M, 2.03 GMACs incl. attention products)."""
    return _rest(num_classes, in_chans, embed_dims=(64, 128, 256, 512), depths=(2, 2, 6, 2), **kwargs)


@register_model("rest_base", paper=_PAPER, url=_URL, data_cfg=_DATA,
                paper_params=30.28, paper_macs=4.3, test_input_size=(64, 64),
                macs_rel_tol=0.025)
def rest_base(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResT:
    """ResT-Base: dims (96, 192, 384, 768), depths (2, 2, 6, 2). Paper: 30.28 M params, 4.3 GFLOPs at 224
    (ours: 30.28 M, 4.40 GMACs incl. attention products)."""
    return _rest(num_classes, in_chans, embed_dims=(96, 192, 384, 768), depths=(2, 2, 6, 2), **kwargs)
