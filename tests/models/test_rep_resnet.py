"""Tests of :mod:`visionblocks.models.rep_resnet`."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.layers import ConvNormAct, fuse_conv_bn
from visionblocks.testing import count_params

from _reference import _meta_reparam_models, _rep_blocks, _rep_models


BLOCKS = _rep_blocks()
MODELS = _rep_models()
def test_something_is_covered():
    assert {"repvgg_block", "acnet_block", "diverse_branch_block"} <= set(BLOCKS)
    assert {"repvgg_a0", "acnet_resnet18", "dbb_resnet18"} <= set(MODELS)


def _fold_3x3(m: nn.Module) -> nn.Module:
    """Replace every 3x3 conv-BN unit by its fused convolution (ReLU kept); the 7x7 stem and the 1x1 shortcuts
    stay conv-BN."""
    for mod in list(m.modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, ConvNormAct) and child.conv.kernel_size == (3, 3):
                setattr(mod, cname, nn.Sequential(fuse_conv_bn(child.conv, child.bn), child.act))
    return m


def _conv_shapes(m: nn.Module) -> list[tuple]:
    return [tuple(x.weight.shape) for x in m.modules() if isinstance(x, nn.Conv2d)]


@pytest.mark.parametrize("name", ["acnet_resnet18", "dbb_resnet18"])
def test_deploys_to_exactly_resnet18(name):
    """Deployed, every replaced 3x3 conv-BN is one convolution with bias: the network is ResNet-18 with those
    BNs folded (same convolutions in the same order, same parameter count: 16 BN vectors fewer)."""
    r18 = _fold_3x3(_meta_reparam_models("resnet18"))
    dep = _meta_reparam_models(name, deploy=True)
    assert _conv_shapes(dep) == _conv_shapes(r18)
    assert count_params(dep) == count_params(r18) == count_params(_meta_reparam_models("resnet18")) - 3840
    train = _meta_reparam_models(name)
    assert count_params(train) > count_params(dep)
    kxk = [x for x in train.modules() if hasattr(x, "reparameterize")]
    assert len(kxk) == 16 and all(x.kernel_size == 3 for x in kxk)  # the 16 3x3 convolutions


@pytest.mark.parametrize("name", ["acnet_resnet18", "dbb_resnet18"])
def test_stem_and_shortcuts_are_plain_conv_bn_as_the_authors(name):
    """Both authors' builders (DingXiaoH/ACNet, DingXiaoH/DiverseBranchBlock) replace only 1 < k < 7
    convolutions: the 7x7 stem and the 1x1 shortcuts are conv-BN, in both forms."""
    for deploy in (False, True):
        m = _meta_reparam_models(name, deploy=deploy)
        stem = m.stem[0]
        assert isinstance(stem, ConvNormAct) and stem.conv.kernel_size == (7, 7)
        assert isinstance(stem.bn, nn.BatchNorm2d)
        shortcuts = [b.shortcut for b in m.modules() if hasattr(b, "shortcut") and not isinstance(b.shortcut, nn.Identity)]
        assert len(shortcuts) == 3 and all(not hasattr(s, "reparameterize") for s in shortcuts)
    with torch.device("meta"):
        old = vb.create_model(name, rep_stem=True)   # the former variant: the stem re-parameterizable too
    assert hasattr(old.stem[0], "reparameterize") and old.stem[0].kernel_size == 7
