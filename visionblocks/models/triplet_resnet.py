"""ResNet-50 with triplet attention (Misra et al., Rotate to Attend: Convolutional Triplet Attention Module,
WACV 2021, arXiv 2010.03045).

Triplet attention is inserted in every bottleneck on the residual branch before the addition (the SENet
position, as in the authors' code built on CBAM's ResNet), whose bottlenecks put the stride on the 3x3
convolution: the paper's ResNet-50 baseline counts 4.122 G FLOPs (multiply-adds), the ``stride_3x3``
variant (the 1x1-stride ResNet of He et al. has 3.86 G).
"""
from __future__ import annotations

from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet

__all__ = ["triplet_resnet50"]


@register_model("triplet_resnet50", paper="Misra et al., Rotate to Attend: Convolutional Triplet Attention Module, "
                "WACV 2021", url="https://arxiv.org/abs/2010.03045", paper_params=25.562, paper_macs=4.169,
                paper_note="The paper's FLOPs come from a ptflops-style counter that also counts BatchNorm (2 per element), "
                "activations, pooling and convolution biases: counted that way our model gives 4.169 G, the paper's "
                "figure (and 4.122 G for its ResNet-50 baseline); torch's flop counter counts convolutions and "
                "matmuls only: 4.136 G.", test_input_size=(32, 32), family="resnet")
def triplet_resnet50(**kwargs) -> ResNet:
    """ResNet-50 + triplet attention: 25.562 M params, 4.169 G FLOPs (multiply-adds) at 224x224
    (Misra et al. Table 1; stride on the 3x3 convolution, as in their 4.122 G ResNet-50 baseline)."""
    kwargs.setdefault("attn", "triplet_attention")
    kwargs.setdefault("stride_3x3", True)
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)
