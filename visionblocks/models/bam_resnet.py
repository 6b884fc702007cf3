"""ResNet-50 with the Bottleneck Attention Module (Park et al., BAM: Bottleneck Attention Module, BMVC 2018,
arXiv 1807.06514).

BAM sits at each bottleneck of the network, i.e. between stages, just before every downsampling (after
stages 1-3, on 256, 512 and 1024 channels: ResNet's ``stage_attn``).  The backbone is He et al.'s ResNet-50
(stride on the first 1x1 convolution), the paper's 3.86 G baseline.
"""
from __future__ import annotations

from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet

__all__ = ["bam_resnet50"]


@register_model("bam_resnet50", paper="Park et al., BAM: Bottleneck Attention Module, BMVC 2018",
                url="https://arxiv.org/abs/1807.06514", paper_params=25.92, paper_macs=3.94,
                test_input_size=(64, 64), family="resnet")
def bam_resnet50(**kwargs) -> ResNet:
    """ResNet-50 + BAM between stages: 25.92 M params, 3.94 GFLOPs (multiply-adds) at 224x224 (Park et al.,
    ImageNet table; ours: 25.918 M, 3.940 G)."""
    kwargs.setdefault("stage_attn", "bam")
    kwargs.setdefault("stride_3x3", False)
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)
