"""Tests of :mod:`visionblocks.models.repvgg`."""
from __future__ import annotations

import pytest
import torch

import visionblocks as vb
from visionblocks.blocks.reparam import RepVGGBlock
from visionblocks.testing import count_params

from _reference import _meta_reparam_models


def test_repvgg_identity_only_when_shapes_allow():
    assert "identity" in RepVGGBlock(8, 8, 3, 1).body
    assert "identity" not in RepVGGBlock(8, 8, 3, 2).body
    assert "identity" not in RepVGGBlock(8, 16, 3, 1).body
def test_repvgg_closed_form():
    """Zero conv kernels and a unit identity BN: the block is relu(x)."""
    m = RepVGGBlock(4, 4, 3).double().eval()
    with torch.no_grad():
        for n in ("conv_kxk", "conv_1x1"):
            m.body[n].conv.weight.zero_()
        bn = m.body["identity"]
        bn.running_var.fill_(1.0 - bn.eps)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(m(x), torch.relu(x))
    m.reparameterize()
    torch.testing.assert_close(m(x), torch.relu(x))


# RepVGG Table 2: (blocks of stages 2-5, a, b); Table 4: deployed params (M)
REPVGG = {"repvgg_a0": ((2, 4, 14, 1), 0.75, 2.5, 8.30), "repvgg_a1": ((2, 4, 14, 1), 1.0, 2.5, 12.78),
          "repvgg_b0": ((4, 6, 16, 1), 1.0, 2.5, 14.33)}
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
    assert count_params(_meta_reparam_models(name)) == train  # create_model builds the trainable form
    assert count_params(_meta_reparam_models(name, deploy=True)) == deploy
    assert vb.model_info(name).count_kwargs == {"deploy": True}  # the paper counts the deployed network
    assert abs(deploy / 1e6 - paper) <= 0.01 * paper
def test_repvgg_a0_figures():
    """A0: 8.31 M deployed (8,309,384; Table 4 prints 8.30), 9.11 M at training time."""
    train, deploy = repvgg_counts(*REPVGG["repvgg_a0"][:3])
    assert round(deploy / 1e6, 2) == 8.31 and round(train / 1e6, 2) == 9.11
@pytest.mark.parametrize("name", list(REPVGG))
def test_repvgg_shapes(name):
    m = _meta_reparam_models(name, deploy=False)
    f = m.forward_features(torch.empty(1, 3, 224, 224, device="meta"))
    assert f.shape == (1, int(512 * REPVGG[name][2]), 7, 7)
    assert m.stem.stride == 2 and all(stage[0].stride == 2 for stage in m.stages)
