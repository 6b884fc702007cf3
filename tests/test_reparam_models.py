"""RepVGG-A0/A1/B0, ACNet and DBB ResNet-18: architecture and parameter counts, train-time and deployed,
against closed forms computed here from the papers' tables (meta device: no memory, no compute)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.layers import ConvNormAct, fuse_conv_bn
from visionblocks.testing import count_params

# RepVGG Table 2: (blocks of stages 2-5, a, b); Table 4: deployed params (M)
REPVGG = {"repvgg_a0": ((2, 4, 14, 1), 0.75, 2.5, 8.30), "repvgg_a1": ((2, 4, 14, 1), 1.0, 2.5, 12.78),
          "repvgg_b0": ((4, 6, 16, 1), 1.0, 2.5, 14.33)}


def _meta(name, **kw):
    with torch.device("meta"):
        return vb.create_model(name, **kw)


def repvgg_counts(layers, a, b, num_classes=1000):
    """(train, deploy) parameter counts of RepVGG from the paper's description: per block a 3x3 conv-BN, a
    1x1 conv-BN and (stride 1, equal widths) an identity BN; deployed, one 3x3 conv with bias."""
    widths = [int(64 * a), int(128 * a), int(256 * a), int(512 * b)]
    blocks = [(3, min(64, int(64 * a)), 2)]
    cin = blocks[0][1]
    for n, w in zip(layers, widths):
        for i in range(n):
            blocks.append((cin, w, 2 if i == 0 else 1))
            cin = w
    head = cin * num_classes + num_classes
    train = sum(9 * i * o + 2 * o + i * o + 2 * o + (2 * o if (i == o and s == 1) else 0) for i, o, s in blocks)
    deploy = sum(9 * i * o + o for i, o, s in blocks)
    return train + head, deploy + head


@pytest.mark.parametrize("name", list(REPVGG))
def test_repvgg_param_counts(name):
    layers, a, b, paper = REPVGG[name]
    train, deploy = repvgg_counts(layers, a, b)
    assert count_params(_meta(name)) == train  # create_model builds the trainable form
    assert count_params(_meta(name, deploy=True)) == deploy
    assert vb.model_info(name).count_kwargs == {"deploy": True}  # the paper counts the deployed network
    assert abs(deploy / 1e6 - paper) <= 0.01 * paper


def test_repvgg_a0_figures():
    """A0: 8.31 M deployed (8,309,384; Table 4 prints 8.30), 9.11 M at training time."""
    train, deploy = repvgg_counts(*REPVGG["repvgg_a0"][:3])
    assert round(deploy / 1e6, 2) == 8.31 and round(train / 1e6, 2) == 9.11


@pytest.mark.parametrize("name", list(REPVGG))
def test_repvgg_shapes(name):
    m = _meta(name, deploy=False)
    f = m.forward_features(torch.empty(1, 3, 224, 224, device="meta"))
    assert f.shape == (1, int(512 * REPVGG[name][2]), 7, 7)
    assert m.stem.stride == 2 and all(stage[0].stride == 2 for stage in m.stages)


def _fold_resnet(m: nn.Module, kxk_only: bool = True) -> nn.Module:
    """Replace every conv-BN unit with a kxk (k > 1) kernel by its fused convolution (ReLU kept)."""
    for name, mod in list(m.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, ConvNormAct) and (child.conv.kernel_size[0] > 1 or not kxk_only):
                fused = nn.Sequential(fuse_conv_bn(child.conv, child.bn), child.act)
                setattr(mod, cname, fused)
    return m


def _conv_shapes(m: nn.Module) -> list[tuple]:
    return [tuple(x.weight.shape) for x in m.modules() if isinstance(x, nn.Conv2d)]


@pytest.mark.parametrize("name", ["acnet_resnet18", "dbb_resnet18"])
def test_deploys_to_exactly_resnet18(name):
    """Deployed, every replaced conv-BN is one convolution with bias: the network is ResNet-18 with those
    BNs folded (same convolutions in the same order, same parameter count)."""
    r18 = _fold_resnet(_meta("resnet18"))
    dep = _meta(name, deploy=True)
    assert _conv_shapes(dep) == _conv_shapes(r18)
    assert count_params(dep) == count_params(r18) == count_params(_meta("resnet18")) - 3904
    train = _meta(name)
    assert count_params(train) > count_params(dep)
    kxk = [x for x in train.modules() if hasattr(x, "reparameterize")]
    assert len(kxk) == 17 and kxk[0].kernel_size == 7  # the 7x7 stem and the 16 3x3 convolutions
