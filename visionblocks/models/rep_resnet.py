"""ResNet-18 with every 3x3 convolution of the basic blocks replaced by a re-parameterizable block: ACNet (Ding
et al., ICCV 2019, arXiv 1908.03930) and Diverse Branch Block (Ding et al., CVPR 2021, arXiv 2103.13425).  Both
papers evaluate exactly this: train with the blocks, fold them, and deploy the original ResNet-18 (He et al.,
arXiv 1512.03385), whose 11.69 M parameters and 1.8 G FLOPs their tables list.

As in both authors' codebases (DingXiaoH/ACNet ``acnet_builder.py`` and DingXiaoH/DiverseBranchBlock
``convnet_utils.py`` replace only convolutions with 1 < k < 7), the 7x7 stem and the 1x1 projection shortcuts
stay plain conv-BN: their published counts and checkpoints are for that network.  (Before issue 14 the stem
was a re-parameterizable block too; ``rep_stem=True`` still builds that variant.)

``create_model`` builds the training-time form; ``visionblocks.reparameterize(model.eval())`` folds it into
the deployed network, which ``deploy=True`` builds directly and which the registry compares with the papers'
figures (``count_kwargs``): each replaced conv-BN unit is one convolution with bias, so it has ResNet-18's
parameters minus one BN vector per replaced unit (16 units, 3,840 fewer numbers; exactly ResNet-18 with those
BNs folded, see tests/models/test_resnet.py).
"""
from __future__ import annotations

from functools import partial

import torch.nn as nn

from visionblocks.blocks.reparam import ACBlock, DiverseBranchBlock
from visionblocks.registry import register_model

from .resnet import BasicBlock, ResNet, build_resnet, conv_mid_layer, resnet_stem

__all__ = ["rep_resnet", "acnet_resnet18", "dbb_resnet18"]


def rep_resnet(conv_block: type[nn.Module], layers=(2, 2, 2, 2), deploy: bool = False, rep_stem: bool = False,
               **kwargs) -> ResNet:
    """A ResNet of basic blocks whose every 3x3 conv-BN(-act) unit is a
    ``conv_block(in_channels, out_channels, kernel_size, stride, groups=, act_layer=, deploy=)``; the 7x7 stem
    too when ``rep_stem`` (the authors keep it plain conv-BN, the default)."""
    unit = partial(conv_block, deploy=deploy)
    if rep_stem:
        kwargs = {"stem_layer": partial(resnet_stem, unit_layer=unit), **kwargs}
    return build_resnet(BasicBlock, layers, kwargs, mid_layer=partial(conv_mid_layer, unit_layer=unit))


@register_model("acnet_resnet18", paper="Ding et al., ACNet: Strengthening the Kernel Skeletons for Powerful CNN via "
                "Asymmetric Convolution Blocks, ICCV 2019", url="https://arxiv.org/abs/1908.03930",
                paper_params=11.69, paper_macs=1.8, count_kwargs={"deploy": True},
                test_input_size=(64, 64))
def acnet_resnet18(num_classes: int = 1000, in_chans: int = 3, deploy: bool = False, **kwargs) -> ResNet:
    """ACNet ResNet-18 (every 3x3 conv-BN an asymmetric convolution block; 7x7 stem and 1x1 shortcuts plain
    conv-BN, as in the authors' code): deployed 11.69 M params, 1.8 GFLOPs at 224x224 (ResNet-18's, the
    network ACNet's ImageNet table deploys); ``deploy=False`` for the training-time form."""
    return rep_resnet(ACBlock, deploy=deploy, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("dbb_resnet18", paper="Ding et al., Diverse Branch Block: Building a Convolution as an "
                "Inception-like Unit, CVPR 2021", url="https://arxiv.org/abs/2103.13425",
                paper_params=11.69, paper_macs=1.8, count_kwargs={"deploy": True},
                test_input_size=(64, 64))
def dbb_resnet18(num_classes: int = 1000, in_chans: int = 3, deploy: bool = False, **kwargs) -> ResNet:
    """DBB ResNet-18 (every 3x3 conv-BN a diverse branch block; 7x7 stem and 1x1 shortcuts plain conv-BN, as
    in the authors' code): deployed 11.69 M params, 1.8 GFLOPs at 224x224 (ResNet-18's, the network DBB's
    ImageNet table deploys); ``deploy=False`` for the training-time form."""
    return rep_resnet(DiverseBranchBlock, deploy=deploy, num_classes=num_classes, in_chans=in_chans, **kwargs)
