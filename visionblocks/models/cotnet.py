"""CoTNet (Li et al., Contextual Transformer Networks for Visual Recognition, TPAMI 2022, arXiv 2107.12292).

CoTNet-50 is ResNet-50 with the 3x3 convolution of every bottleneck replaced by a CoT block (which already
ends with its own normalisation, so no BN/ReLU follows it).  Downsampling bottlenecks put a 3x3 stride-2
average pool in front of the CoT block, as in the authors' code (JDAI-CV/CoTNet).  The last BatchNorm of every
residual branch starts at zero, as in the authors' code (their timm-based ResNet's ``zero_init_last_bn=True``):
with it at one, each CoT bottleneck amplifies its input's perturbations (its generated local kernels are not
normalised), and a float32 forward of the initialised network differed from float64 by 1.3e-2 of its logits at
32x32 (2.4e-7 with it).
"""
from __future__ import annotations

import torch.nn as nn

from visionblocks.blocks.attention import ContextualTransformer
from visionblocks.layers import LayerType
from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet, build_resnet

__all__ = ["cot_mid_layer", "cotnet50"]


def cot_mid_layer(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                  act_layer: LayerType = "relu", stage: int = 0, **cot_kwargs) -> nn.Module:
    """CoTNet's middle-layer hook: ``[AvgPool3x3/2 ->] CoT(width)``.  The CoT block ends with its own
    normalisation and keeps its own activation (SiLU), so ``act_layer`` and ``stage`` are not used."""
    if in_channels != out_channels:
        raise ValueError(f"a CoT middle layer keeps the width: in_channels ({in_channels}) must equal "
                         f"out_channels ({out_channels})")
    if groups != 1:
        raise ValueError(f"CoTNet uses groups=1 (CoTNeXt is not provided), got groups={groups}")
    cot = ContextualTransformer(in_channels, **cot_kwargs)
    if stride == 1:
        return cot
    return nn.Sequential(nn.AvgPool2d(3, stride, padding=1), cot)


@register_model("cotnet50", paper="Li et al., Contextual Transformer Networks for Visual Recognition, TPAMI 2022",
                url="https://arxiv.org/abs/2107.12292", paper_params=22.2, paper_macs=3.3,
                macs_rel_tol=0.025, test_input_size=(32, 32))
def cotnet50(**kwargs) -> ResNet:
    """CoTNet-50: 22.2 M params, 3.3 G FLOPs (multiply-adds) at 224x224 (Li et al. Table 1)."""
    return build_resnet(Bottleneck, (3, 4, 6, 3), kwargs, mid_layer=cot_mid_layer, stride_3x3=True,
                        zero_init_last=True)
