"""Tests of :mod:`visionblocks.models.cotnet`."""
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.blocks.attention.cot import ContextualTransformer
from visionblocks.models.resnet import Bottleneck

from _reference import _meta_attention_spatial_models


def test_cotnet50_structure():
    m = _meta_attention_spatial_models("cotnet50")
    blocks = [b for b in m.modules() if isinstance(b, Bottleneck)]
    assert len(blocks) == 16
    for i, b in enumerate(blocks):
        mid = b.conv2
        if i in (3, 7, 13):  # first block of stages 2-4: 3x3/2 average pool, then CoT
            assert isinstance(mid, nn.Sequential) and isinstance(mid[0], nn.AvgPool2d)
            assert isinstance(mid[1], ContextualTransformer)
        else:
            assert isinstance(mid, ContextualTransformer)
        assert isinstance(b.attn, nn.Identity)


def test_variant_hooks_survive_user_block_kwargs():
    """cotnet50(block_kwargs=...) used to replace the variant's block kwargs, silently dropping the CoT layer."""
    with torch.device("meta"):
        m = vb.create_model("cotnet50", block_kwargs={"stride_3x3": False})
    b = m.stages[1][0]
    assert type(b.conv2).__name__ == "ContextualTransformer" and b.conv1.conv.stride == (2, 2)


def test_cotnet50_starts_every_residual_branch_at_zero():
    # the authors' ResNet (timm-based) zero-initialises each bottleneck's last BN; without it the initialised
    # network amplifies float32 rounding (float32 vs float64 logits ~1e-2 apart at 32x32, ~1e-7 with it)
    import copy
    torch.manual_seed(0)
    m = vb.create_model("cotnet50", num_classes=10).eval()
    last = [b.conv3.bn for b in m.modules() if isinstance(b, Bottleneck)]
    assert len(last) == 16 and all(bool((bn.weight == 0).all()) for bn in last)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = m(x).double(), copy.deepcopy(m).double()(x.double())
    assert float((a - b).abs().max() / b.abs().max()) < 1e-5
