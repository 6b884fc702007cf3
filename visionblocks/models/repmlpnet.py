"""RepMLPNet (Ding et al., RepMLPNet: Hierarchical Vision MLP with Re-parameterized Locality, CVPR 2022,
arXiv 2112.11081).

A unit is ``y = x + Block(BN(x))``, ``z = y + FFN(BN(y))`` (FFN: 1x1 conv-BN, GELU, 1x1 conv-BN, ratio 4), where
Block is the RepMLPNet block (global, channel and local perceptrons on (h, w) partitions, the channels in
share-sets; ``RepMLPNetBlock`` in ``visionblocks/blocks/reparam/_repmlpnet_block.py``), whose "Locality
Injection" (``visionblocks.reparameterize(model.eval())``) folds the local perceptron and the BN into its FC.
RepMLPNet-T224: channels (64, 128, 256, 512), blocks (2, 2, 6, 2), partitions = the stage sizes
(56, 28, 14, 7), share-sets (1, 4, 16, 128); 4x4 conv-BN-ReLU embedding, 2x2 conv-BN-ReLU merging, BN,
average pooling, linear head.  Paper (Table 4): 38.3M params, 2.8 GFLOPs at 224.  Evaluated as the authors' code
(``TEST.CROP = False``): resize the short side to 224, centre crop 224 (crop_pct 1.0), bilinear.

Features (``feature_info``): one per stage, reductions 4, 8, 16, 32 (the last unit of each stage); the final
BatchNorm is ``forward_final`` (``forward_intermediates(norm=True)`` applies it to the last feature).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.blocks.reparam import RepMLPNetBlock
from visionblocks.features import FeatureInfo
from visionblocks.layers import ConvNormAct, DropPath
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase

__all__ = ["RepMLPNet", "RepMLPNetUnit"]

_PAPER = "Ding et al., RepMLPNet: Hierarchical Vision MLP with Re-parameterized Locality, CVPR 2022"
_URL = "https://arxiv.org/abs/2112.11081"


class RepMLPNetUnit(nn.Module):
    """``y = x + RepMLPNetBlock(BN(x))``; ``z = y + FFN(BN(y))``."""

    def __init__(self, channels: int, partition, num_sharesets: int, reparam_conv_k=(1, 3), ffn_ratio: int = 4,
                 drop_path: float = 0.0, deploy: bool = False):
        super().__init__()
        self.prebn1 = nn.BatchNorm2d(channels)
        self.block = RepMLPNetBlock(channels, partition, num_sharesets, reparam_conv_k, deploy=deploy)
        self.prebn2 = nn.BatchNorm2d(channels)
        self.ffn = nn.Sequential(ConvNormAct(channels, channels * ffn_ratio, 1, act_layer="gelu"),
                                 ConvNormAct(channels * ffn_ratio, channels, 1, act_layer=None))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.block(self.prebn1(x)))
        return x + self.drop_path(self.ffn(self.prebn2(x)))


class RepMLPNet(ModelBase):
    """Hierarchical RepMLPNet; inputs must make every stage a multiple of its partition size.

    Args:
        channels, blocks: widths and units per stage.
        partitions, sharesets: the (h, w) partition size and share-sets of each stage's RepMLPNet blocks.
        reparam_conv_k: kernel sizes of the local perceptron.
        patch_size: the embedding convolution's kernel and stride.
        num_classes, in_chans: classifier size (0 for none) and input channels.
        drop_rate, drop_path_rate: dropout before the classifier, stochastic depth of the units' two residual
            branches (linear ramp).
        deploy: build the blocks in their folded inference form.
    """

    def __init__(self, channels=(64, 128, 256, 512), blocks=(2, 2, 6, 2), partitions=(56, 28, 14, 7),
                 sharesets=(1, 4, 16, 128), reparam_conv_k=(1, 3), patch_size: int = 4, num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.partitions = tuple(partitions)
        total, k = sum(blocks), 0
        layers = [ConvNormAct(in_chans, channels[0], patch_size, patch_size, padding=0)]
        features, self.feature_plan, reduction = [], [], patch_size
        for i, n in enumerate(blocks):
            first = len(layers)
            if i > 0:
                layers.append(ConvNormAct(channels[i - 1], channels[i], 2, 2, padding=0))
                reduction *= 2
            for _ in range(n):
                layers.append(RepMLPNetUnit(channels[i], (partitions[i], partitions[i]), sharesets[i], reparam_conv_k,
                                            drop_path=drop_path_rate * k / max(1, total - 1), deploy=deploy))
                k += 1
            self.feature_plan.append([f"features.{j}" for j in range(0 if i == 0 else first, len(layers))])
            features.append(dict(num_chs=channels[i], reduction=reduction, module=f"features.{len(layers) - 1}"))
        self.features = nn.Sequential(*layers)
        self.feature_info = FeatureInfo(features)
        self.norm = nn.BatchNorm2d(channels[-1])
        self.head = ClassifierHead(channels[-1], num_classes, drop_rate)
        self.num_features = channels[-1]

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        unit = self.patch_size * self.partitions[0]
        if x.shape[-2] % unit or x.shape[-1] % unit:
            raise ValueError(f"{type(self).__name__} needs an input size that is a multiple of {unit} (its FCs are "
                             f"tied to the {self.partitions} partitions); got input of shape {tuple(x.shape)}")

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """The final BatchNorm."""
        return self.norm(x)

    def prune_final(self) -> None:
        self.norm = nn.Identity()


@register_model("repmlpnet_t224", paper=_PAPER, url=_URL, paper_params=38.3, paper_macs=2.8,
                data_cfg={"crop_pct": 1.0, "interpolation": "bilinear"})
def repmlpnet_t224(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> RepMLPNet:
    """RepMLPNet-T224: 38.3M params, 2.8 GFLOPs at 224 (paper Table 4)."""
    return RepMLPNet((64, 128, 256, 512), (2, 2, 6, 2), (56, 28, 14, 7), (1, 4, 16, 128), (1, 3),
                     num_classes=num_classes, in_chans=in_chans, **kwargs)
