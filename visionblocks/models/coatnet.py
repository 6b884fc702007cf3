"""CoAtNet (Dai et al., CoAtNet: Marrying Convolution and Attention for All Data Sizes, NeurIPS 2021,
arXiv 2106.04803).

The C-C-T-T layout of Table 3: a two-conv stem S0, two MBConv stages S1/S2 and two relative-attention
transformer stages S3/S4 (the ``coatnet_attention`` block, heads of size 32, table sized for the stage's map at
224x224: 14x14 and 7x7), each stage halving the resolution in its first block.  CoAtNet-0: L = (2, 2, 3, 5, 2),
D = (64, 96, 192, 384, 768).

The MBConv blocks are the library's ``mbconv`` (expansion 4, squeeze-excitation 0.25, GELU, stride on the
depth-wise conv) used pre-norm as the paper writes them: ``x <- x + MBConv(BN(x))``, and in a stage's first
block ``x <- Proj(Pool(x)) + MBConv(BN(x), stride 2)`` (Sec. 2.3; Pool = 3x3/2 max pooling, Proj = 1x1 conv).
Eq. (5) writes the stride on the first 1x1 convolution; the library's MBConv carries it on the depth-wise
convolution (as EfficientNet does), which gives 4.23 G multiply-adds against the paper's 4.2 G (with the stride
on the 1x1 the count would drop to about 4.0 G).  The SE bottleneck is a quarter of the expanded width.
The head is global average pooling and a linear classifier.  Evaluated at 224 with crop ratio 0.875, bicubic,
ImageNet mean/std (the paper states no evaluation transform; this is the standard ImageNet evaluation).

Features (``feature_info``): one per stage, S0 (the stem, reduction 2) to S4 (32), as (B, C, H, W) maps.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.blocks.attention import CoAtNetTransformerBlock
from visionblocks.blocks.conv import MBConv
from visionblocks.features import FeatureInfo
from visionblocks.layers import ConvNormAct, DropPath, LayerType, deprecated_se_ratio, reduced_channels, se_kwargs
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase

__all__ = ["CoAtNet", "PreNormMBConv", "coatnet_0"]


class PreNormMBConv(nn.Module):
    """``shortcut(x) + MBConv(BN(x))`` with CoAtNet's pooled/projected shortcut when downsampling.

    ``attn_layer`` is the attention on the expanded features (default ``"se"``: CoAtNet's SE, a quarter of the
    expanded width, with the block's activation); ``se_ratio=r`` (deprecated) is that SE ``r`` of the expanded
    width, or none for 0.
    """

    @deprecated_se_ratio(lambda a, r: max(1, int(int(round(a["in_channels"] * a["expand_ratio"])) * r)))
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: float = 4.0,
                 attn_layer: LayerType = "se", attn_kwargs: dict | None = None, act_layer: LayerType = "gelu",
                 drop_path: float = 0.0):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        hidden = int(round(in_channels * expand_ratio))
        attn_kwargs = se_kwargs(attn_layer, attn_kwargs, reduced_channels(hidden, 4), act_layer=act_layer)
        self.mbconv = MBConv(in_channels, out_channels, 3, stride, expand_ratio=expand_ratio, attn_layer=attn_layer,
                             attn_kwargs=attn_kwargs, act_layer=act_layer)
        self.mbconv.has_skip = False  # the residual is added here, around the pre-norm
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.MaxPool2d(3, stride, 1) if stride > 1 else nn.Identity(),
                                          nn.Conv2d(in_channels, out_channels, 1))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.drop_path(self.mbconv(self.norm(x)))


class CoAtNet(ModelBase):
    """CoAtNet with C-C-T-T stages.

    Args:
        depths: blocks of S0..S4.
        dims: channels of S0..S4.
        rel_sizes: relative-bias table sizes of S3, S4 (their feature size at 224x224).
        num_classes, in_chans, drop_rate, drop_path_rate: classifier, input channels, dropout before the
            classifier, stochastic depth of the residual branches of S1-S4 (linear ramp).

    Features (``feature_info``): the stem S0 (reduction 2), then S1..S4 (4, 8, 16, 32).
    """

    def __init__(self, depths=(2, 2, 3, 5, 2), dims=(64, 96, 192, 384, 768), rel_sizes=(14, 7), num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        self.stem = nn.Sequential(ConvNormAct(in_chans, dims[0], 3, 2, act_layer="gelu"),
                                  *[ConvNormAct(dims[0], dims[0], 3, act_layer="gelu") for _ in range(depths[0] - 1)])
        total = sum(depths[1:])
        dpr = [drop_path_rate * i / max(1, total - 1) for i in range(total)]
        stages, cin, idx = [], dims[0], 0
        for s in range(1, 5):
            blocks = []
            for i in range(depths[s]):
                stride = 2 if i == 0 else 1
                if s <= 2:
                    blocks.append(PreNormMBConv(cin, dims[s], stride, drop_path=dpr[idx]))
                else:
                    blocks.append(CoAtNetTransformerBlock(cin, dims[s], dim_head=32, rel_size=rel_sizes[s - 3],
                                                          stride=stride, drop_path=dpr[idx]))
                cin, idx = dims[s], idx + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = cin
        self.head = ClassifierHead(cin, num_classes, drop_rate)
        self.feature_info = FeatureInfo([dict(num_chs=dims[0], reduction=2, module="stem")] +
                                        [dict(num_chs=dims[s], reduction=2 ** (s + 1), module=f"stages.{s - 1}")
                                         for s in range(1, 5)])
        self.feature_plan = [["stem"]] + [[f"stages.{s}"] for s in range(4)]


@register_model("coatnet_0", paper="Dai et al., CoAtNet: Marrying Convolution and Attention for All Data Sizes, "
                "NeurIPS 2021", url="https://arxiv.org/abs/2106.04803", input_size=(3, 224, 224), paper_params=25.0,
                paper_macs=4.2, test_input_size=(32, 32), data_cfg={"crop_pct": 0.875, "interpolation": "bicubic"})
def coatnet_0(**kwargs) -> CoAtNet:
    """CoAtNet-0: 25 M params, 4.2 GFLOPs at 224x224 (Table 3 / Table 4 of the paper)."""
    return CoAtNet((2, 2, 3, 5, 2), (64, 96, 192, 384, 768), **kwargs)
