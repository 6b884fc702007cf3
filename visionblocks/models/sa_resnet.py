"""SA-Net-50 (Zhang & Yang, SA-Net: Shuffle Attention for Deep Convolutional Neural Networks, ICASSP 2021,
arXiv 2102.00240).

ResNet-50 with shuffle attention (G = 64) on the residual branch of every bottleneck, after its last BN and
before the addition (the SENet position, as in the authors' code).  The authors' ResNet is torchvision's
(stride on the 3x3 convolution): the paper's 4.12 G ResNet-50 baseline.
"""
from __future__ import annotations

from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet

__all__ = ["sa_resnet50"]


@register_model("sa_resnet50", paper="Zhang & Yang, SA-Net: Shuffle Attention for Deep Convolutional Neural Networks, "
                "ICASSP 2021", url="https://arxiv.org/abs/2102.00240", paper_params=25.56, paper_macs=4.12,
                paper_note="The paper gives ResNet-50 25.56 M / 4.12 GFLOPs plus SA's '300 parameters and 2.76e-3 "
                "GFLOPs'; SA's own definition (W1, b1, W2, b2 and the GroupNorm affine, C/2G each) adds 3C/G = 708 "
                "parameters over the 16 bottlenecks, as does the authors' code.  Their FLOPs counter also counts "
                "BatchNorm/activations/pooling (4.12 G for ResNet-50); torch's flop counter counts convolutions "
                "and matmuls only: 4.089 G.", test_input_size=(64, 64), family="resnet")
def sa_resnet50(**kwargs) -> ResNet:
    """SA-Net-50: 25.56 M params, 4.12 GFLOPs (multiply-adds) at 224x224 (Zhang & Yang; ours: 25.558 M,
    4.089 G)."""
    kwargs.setdefault("attn", "shuffle_attention")
    kwargs.setdefault("stride_3x3", True)
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)
