"""MobileViT (Mehta & Rastegari, ICLR 2022, arXiv 2110.02178) and MobileViTv2 (Mehta & Rastegari, TMLR 2023,
arXiv 2206.02680).

Both are MobileNetV2 networks (the library's ``mbconv`` inverted residuals, SiLU, no SE) whose last three
stages each start with a stride-2 inverted residual followed by a MobileViT block (``mobilevit_attention``)
or a MobileViTv2 block (``mobilevitv2_attention``); 256x256 input.

MobileViT (Table 4 / Fig. 6 of the paper, ml-cvnets configs): stem 3x3/2 conv (16), stage 1 one MV2, stage 2
three MV2 (first stride 2), stages 3-5 MV2/2 + MobileViT block with L = 2, 4, 3 transformer layers, 4 heads,
FFN 2d, 2x2 patches; a 1x1 conv to 4x the last width, global pooling and a linear classifier.

MobileViTv2-alpha (Sec. 4 / Table 13): widths 32, 64, 128, 256, 384, 512 times alpha (MV2 expansion 2; stage
2 has two MV2, not three),
transformer width d = 128, 192, 256 times alpha with L = 2, 4, 3 separable-attention layers, no final 1x1
expansion: global pooling and a linear classifier on the 512 alpha features.

Evaluated at 256 with crop ratio 0.9 (MobileViT) or 0.888 (MobileViTv2: resize to 288, crop 256), bicubic, and no
normalisation (mean 0, std 1: the authors' ml-cvnets pipeline, as in timm).

Features (``feature_info``): one per stage, (B, C, H / r, W / r) maps at r = 2 (the stem and stage 1), 4, 8,
16, 32; the final 1x1 expansion of MobileViT follows the last feature (``forward_features`` applies it).
"""
from __future__ import annotations

import torch.nn as nn

from visionblocks.blocks.attention import MobileViTBlock, MobileViTv2Block
from visionblocks.blocks.conv import MBConv
from visionblocks.features import FeatureInfo
from visionblocks.layers import ConvNormAct, make_divisible
from visionblocks.registry import register_model

from ._base import ClassifierHead, ConvHeadModel

__all__ = ["MobileViT", "mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilevitv2_050", "mobilevitv2_100",
           "mobilevitv2_200"]

_PAPER = "Mehta & Rastegari, MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision Transformer, ICLR 2022"
_URL = "https://arxiv.org/abs/2110.02178"
_PAPER2 = "Mehta & Rastegari, Separable Self-attention for Mobile Vision Transformers, TMLR 2023"
_URL2 = "https://arxiv.org/abs/2206.02680"


class MobileViT(ConvHeadModel):
    """MobileViT / MobileViTv2 backbone and classifier.

    Args:
        widths: (stem, stage1, ..., stage5) output channels.
        dims: transformer width d of stages 3-5.
        depths: transformer layers L of stages 3-5.
        expand_ratio: MV2 expansion.
        version: 1 (MobileViT block) or 2 (MobileViTv2 block).
        exp_channels: channels of the final 1x1 conv (v1: 4x the last width; ``None``: no such conv, v2).
        num_heads: attention heads of the v1 transformers (paper: 4).
        stage2_blocks: inverted residuals of stage 2 (v1: 3, v2: 2).
        num_classes, in_chans, drop_rate: classifier size, input channels, dropout before the classifier.
        drop_path_rate: stochastic depth (linear ramp over the blocks) of the residual branches: those of the
            inverted residuals with a skip, and the transformer layers of each MobileViT block (one rate a block).

    Features (``feature_info``): one per stage (stage 1 includes the stem) at reductions 2, 4, 8, 16, 32.
    """

    final_conv_attr = "final_conv"  # the 1x1 conv-BN-SiLU to exp_channels (v2: none, an Identity)

    def __init__(self, widths, dims, depths, expand_ratio: float, version: int = 1, exp_channels: int | None = None,
                 num_heads: int = 4, stage2_blocks: int = 3, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        self.stem = ConvNormAct(in_chans, widths[0], 3, 2, act_layer="silu")

        total = 1 + stage2_blocks + 2 * len(dims)  # blocks in network order: the ramp's positions
        dpr = [drop_path_rate * i / max(1, total - 1) for i in range(total)]

        def mv2(cin, cout, stride, k):
            return MBConv(cin, cout, 3, stride, expand_ratio=expand_ratio, attn_layer=None, act_layer="silu",
                          drop_path=dpr[k])

        # (built in this order so that a seeded model keeps its initialisation)
        stage2 = [mv2(widths[1], widths[2], 2, 1)] + [mv2(widths[2], widths[2], 1, 1 + i)
                                                      for i in range(1, stage2_blocks)]
        stages = [nn.Sequential(mv2(widths[0], widths[1], 1, 0)), nn.Sequential(*stage2)]
        for i, (d, depth) in enumerate(zip(dims, depths)):
            cin, cout, k = widths[2 + i], widths[3 + i], 1 + stage2_blocks + 2 * i
            if version == 1:
                block = MobileViTBlock(cout, d, 2 * d, depth, num_heads=num_heads, drop_path=dpr[k + 1])
            else:
                block = MobileViTv2Block(cout, d, 2 * d, depth, drop_path=dpr[k + 1])
            stages.append(nn.Sequential(mv2(cin, cout, 2, k), block))
        self.stages = nn.Sequential(*stages)
        if exp_channels is not None:
            self.final_conv = ConvNormAct(widths[-1], exp_channels, 1, act_layer="silu")
            self.num_features = exp_channels
        else:
            self.final_conv = nn.Identity()
            self.num_features = widths[-1]
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        self.feature_info = FeatureInfo([dict(num_chs=widths[1 + i], reduction=2 ** (i + 1), module=f"stages.{i}")
                                         for i in range(len(stages))])
        self.feature_plan = [["stem", "stages.0"]] + [[f"stages.{i}"] for i in range(1, len(stages))]



def _reg(name, params, macs, paper=_PAPER, url=_URL, macs_rel_tol=0.01):
    crop_pct = 0.9 if paper == _PAPER else 0.888  # ml-cvnets: v2 resizes to 288 and crops 256
    data_cfg = {"crop_pct": crop_pct, "interpolation": "bicubic", "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
    return register_model(name, paper=paper, url=url, input_size=(3, 256, 256), paper_params=params,
                          paper_macs=macs, test_input_size=(32, 32),
                          macs_rel_tol=macs_rel_tol, data_cfg=data_cfg)


@_reg("mobilevit_xxs", 1.27, 0.4)
def mobilevit_xxs(**kwargs) -> MobileViT:
    """MobileViT-XXS: 1.3 M params (1.27 M exactly), 0.4 GFLOPs at 256x256 (paper)."""
    return MobileViT((16, 16, 24, 48, 64, 80), (64, 80, 96), (2, 4, 3), 2.0, 1, 320, **kwargs)


@_reg("mobilevit_xs", 2.3, 1.0)
def mobilevit_xs(**kwargs) -> MobileViT:
    """MobileViT-XS: 2.3 M params, 1.0 GFLOPs at 256x256 (paper)."""
    return MobileViT((16, 32, 48, 64, 80, 96), (96, 120, 144), (2, 4, 3), 4.0, 1, 384, **kwargs)


@_reg("mobilevit_s", 5.6, 2.0)
def mobilevit_s(**kwargs) -> MobileViT:
    """MobileViT-S: 5.6 M params, 2.0 GFLOPs at 256x256 (paper)."""
    return MobileViT((16, 32, 64, 96, 128, 160), (144, 192, 240), (2, 4, 3), 4.0, 1, 640, **kwargs)


def _v2(alpha: float, **kwargs) -> MobileViT:
    widths = (int(make_divisible(min(64.0, max(16.0, 32 * alpha)), 8, 16)),) + tuple(
        int(make_divisible(c * alpha, 16)) for c in (64, 128, 256, 384, 512))
    dims = tuple(int(make_divisible(c * alpha, 8)) for c in (128, 192, 256))
    return MobileViT(widths, dims, (2, 4, 3), 2.0, 2, None, stage2_blocks=2, **kwargs)


@_reg("mobilevitv2_050", 1.37, 0.5, _PAPER2, _URL2)
def mobilevitv2_050(**kwargs) -> MobileViT:
    """MobileViTv2-0.5: 1.4 M params (1.37 M exactly), 0.5 GFLOPs at 256x256 (paper)."""
    return _v2(0.5, **kwargs)


@_reg("mobilevitv2_100", 4.9, 1.8, _PAPER2, _URL2)
def mobilevitv2_100(**kwargs) -> MobileViT:
    """MobileViTv2-1.0: 4.9 M params, 1.8 GFLOPs at 256x256 (paper)."""
    return _v2(1.0, **kwargs)


@_reg("mobilevitv2_200", 18.4, 7.5, _PAPER2, _URL2, macs_rel_tol=0.05)
def mobilevitv2_200(**kwargs) -> MobileViT:
    """MobileViTv2-2.0: 18.4 M params, 7.5 GFLOPs at 256x256 (paper; we count 7.16 G, see paper_note)."""
    return _v2(2.0, **kwargs)
