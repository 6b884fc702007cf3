"""RepVGG (Ding et al., RepVGG: Making VGG-style ConvNets Great Again, CVPR 2021, arXiv 2101.03697).

A plain stack of RepVGG blocks in five stages (paper Sec. 4.1, Table 2): stage 1 is one block of
``min(64, 64a)`` channels, stages 2-5 have ``64a, 128a, 256a, 512b`` channels and (1+)``1, 2, 4, 14, 1``
(RepVGG-A) or ``1, 4, 6, 16, 1`` (RepVGG-B) blocks; the first block of every stage has stride 2, so a
224x224 input ends at 7x7; then global average pooling and a linear classifier.

``create_model("repvgg_a0")`` builds the training-time form (3x3 + 1x1 + identity branches with BNs);
train it, then ``visionblocks.reparameterize(model.eval())`` folds it into the deployed network (every
block one 3x3 convolution with bias, then ReLU), which ``create_model("repvgg_a0", deploy=True)`` builds
directly for folded checkpoints.  The paper's Table 4 counts the deployed network, so the registry compares
that form with it (``count_kwargs={"deploy": True}``).
"""
from __future__ import annotations

import warnings

import torch.nn as nn

from visionblocks.blocks.reparam import RepVGGBlock
from visionblocks.features import FeatureInfo
from visionblocks.layers import LayerType, deprecated_flag, init_weights
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase, check_attn_kwargs

__all__ = ["RepVGG"]


class RepVGG(ModelBase):
    """RepVGG with width multipliers ``a`` (stages 1-4) and ``b`` (last stage).

    Args:
        layers: blocks in stages 2-5 (stage 1 is one block).
        width_multiplier: (a, b).
        num_classes, in_chans: classifier size (0 for none) and input channels.
        attn_layer, attn_kwargs: attention in every block, after the branch sum (``"se"``: RepVGG-D2se style;
            the deprecated ``use_se=True`` means ``attn_layer="se"``).  (The grouped RepVGG-g2/g4 variants,
            which group only some layers, are not provided.)
        deploy: build every block in its folded inference form.
        drop_rate: dropout before the classifier.
        drop_path_rate: accepted for a uniform model API, applied to nothing (with a warning): RepVGG has no
            residual branch to drop (its identity branch is a BatchNorm summed with the convolutions, folded away at
            deployment).

    Features (``feature_info``): the stem block (reduction 2), then each stage (4, 8, 16, 32); the same module
    paths before and after ``visionblocks.reparameterize`` (folding replaces submodules inside the blocks).

    Weights keep torch's default initialisation, as in the authors' code (DingXiaoH/RepVGG has no init routine).
    """

    @deprecated_flag("use_se", "attn_layer", "se")
    def __init__(self, layers: tuple[int, int, int, int], width_multiplier: tuple[float, float],
                 num_classes: int = 1000, in_chans: int = 3, attn_layer: LayerType = None,
                 attn_kwargs: dict | None = None, deploy: bool = False, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        if drop_path_rate:  # accepted for a uniform model API (timm pipelines pass it to every model)
            warnings.warn(f"RepVGG has no residual branch to drop: drop_path_rate={drop_path_rate} applies to "
                          "nothing (its identity branch is a BatchNorm summed with the convolutions; timm's "
                          "experimental drop path there is not in the paper)", stacklevel=3)
        check_attn_kwargs(attn_layer, attn_kwargs, "attn_layer", "attn_kwargs")
        self.in_chans = in_chans
        a, b = width_multiplier
        widths = (int(64 * a), int(128 * a), int(256 * a), int(512 * b))
        in_ch = min(64, int(64 * a))
        block_kwargs = {"attn_layer": attn_layer, "attn_kwargs": attn_kwargs, "deploy": deploy}
        self.stem = RepVGGBlock(in_chans, in_ch, 3, 2, **block_kwargs)
        stages, features = [], [dict(num_chs=in_ch, reduction=2, module="stem")]
        for s, (n, width) in enumerate(zip(layers, widths)):
            blocks = []
            for i in range(n):
                blocks.append(RepVGGBlock(in_ch, width, 3, 2 if i == 0 else 1, **block_kwargs))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
            features.append(dict(num_chs=in_ch, reduction=2 ** (s + 2), module=f"stages.{s}"))
        self.stages = nn.Sequential(*stages)
        self.feature_info = FeatureInfo(features)
        self.feature_plan = [["stem"]] + [[f"stages.{s}"] for s in range(len(stages))]
        self.num_features = in_ch
        self.head = ClassifierHead(in_ch, num_classes, drop_rate)
        init_weights(self, conv=None, linear=None)  # torch's defaults: the authors' scheme


_PAPER = "Ding et al., RepVGG: Making VGG-style ConvNets Great Again, CVPR 2021"
_URL = "https://arxiv.org/abs/2101.03697"


def _reg(name: str, params: float, macs: float):
    """Register a RepVGG variant, compared in its deployed form as the paper's Table 4 counts it."""
    return register_model(name, paper=_PAPER, url=_URL, paper_params=params, paper_macs=macs,
                          test_input_size=(64, 64), count_kwargs={"deploy": True})


@_reg("repvgg_a0", 8.30, 1.4)
def repvgg_a0(num_classes: int = 1000, in_chans: int = 3, deploy: bool = False, **kwargs) -> RepVGG:
    """RepVGG-A0 (a=0.75, b=2.5; 2-4-14-1 blocks): deployed 8.30 M params, 1.4 GFLOPs at 224x224 (Table 4);
    training-time form (``deploy=False``) 9.11 M params."""
    return RepVGG((2, 4, 14, 1), (0.75, 2.5), num_classes, in_chans, deploy=deploy, **kwargs)


@_reg("repvgg_a1", 12.78, 2.4)
def repvgg_a1(num_classes: int = 1000, in_chans: int = 3, deploy: bool = False, **kwargs) -> RepVGG:
    """RepVGG-A1 (a=1, b=2.5; 2-4-14-1 blocks): deployed 12.78 M params, 2.4 GFLOPs at 224x224 (Table 4);
    training-time form (``deploy=False``) 14.09 M params."""
    return RepVGG((2, 4, 14, 1), (1.0, 2.5), num_classes, in_chans, deploy=deploy, **kwargs)


@_reg("repvgg_b0", 14.33, 3.1)
def repvgg_b0(num_classes: int = 1000, in_chans: int = 3, deploy: bool = False, **kwargs) -> RepVGG:
    """RepVGG-B0 (a=1, b=2.5; 4-6-16-1 blocks): deployed 14.33 M params, 3.1 GFLOPs at 224x224 (Table 4);
    training-time form (``deploy=False``) 15.82 M params."""
    return RepVGG((4, 6, 16, 1), (1.0, 2.5), num_classes, in_chans, deploy=deploy, **kwargs)
