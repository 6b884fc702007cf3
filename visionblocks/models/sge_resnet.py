"""SGE-ResNet50 (Li, Hu & Yang, Spatial Group-wise Enhance: Improving Semantic Feature Learning in
Convolutional Networks, arXiv 1905.09646, 2019).

ResNet-50 with SGE (G = 64) on the residual branch of every bottleneck, after its last BN and before the
addition (as in the authors' code, implus/PytorchInsight), whose ResNet puts the stride on the 3x3
convolution (4.122 G baseline).
"""
from __future__ import annotations

from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet

__all__ = ["sge_resnet50"]


@register_model("sge_resnet50", paper="Li et al., Spatial Group-wise Enhance: Improving Semantic Feature Learning in "
                "Convolutional Networks, arXiv 2019", url="https://arxiv.org/abs/1905.09646", paper_params=25.56,
                paper_macs=4.127, paper_note="The paper's FLOPs counter also counts BatchNorm/activations/pooling "
                "(4.122 G for its ResNet-50 baseline, 4.127 G with SGE); torch's flop counter counts convolutions "
                "and matmuls only: 4.089 G (SGE's own multiply-adds are not convolutions).",
                test_input_size=(64, 64), family="resnet")
def sge_resnet50(**kwargs) -> ResNet:
    """SGE-ResNet50: 25.56 M params, 4.127 GFLOPs (multiply-adds) at 224x224 (Li et al. Table; ours:
    25.559 M, 4.089 G)."""
    kwargs.setdefault("attn", "sge")
    kwargs.setdefault("stride_3x3", True)
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)
