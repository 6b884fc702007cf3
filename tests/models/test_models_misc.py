"""Tests that name no single block or model (kept together by scripts/mirror_tests.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.blocks.attention.cot import ContextualTransformer
from visionblocks.layers import SqueezeExcite
from visionblocks.models.coatnet import PreNormMBConv
from visionblocks.models.efficientnet import CondConvMBConv
from visionblocks.models.ghostnet import GhostBottleneck
from visionblocks.testing import randomize_bn_stats

from _reference import _meta_attention_spatial_models, _meta_conv_variant_models


def _ptflops_style_macs(model, size=224):
    """Multiply-adds as the ptflops-style counters of the triplet-attention and CoTNet authors count them:
    convolutions (+ bias adds), BatchNorm (2 per element), activations, pooling and linear layers, plus CoT's
    local aggregation (k^2 per output element)."""
    total = [0]

    def conv(m, i, o):
        total[0] += int(np.prod(m.kernel_size)) * (m.in_channels // m.groups) * o.numel()
        total[0] += o.numel() if m.bias is not None else 0

    def elem_out(m, i, o):
        total[0] += o.numel()

    def elem_in(m, i, o):
        total[0] += i[0].numel()

    hooks = {nn.Conv2d: conv, nn.BatchNorm2d: lambda m, i, o: total.__setitem__(0, total[0] + 2 * o.numel()),
             nn.ReLU: elem_out, nn.SiLU: elem_out, nn.Sigmoid: elem_out, nn.AvgPool2d: elem_in, nn.MaxPool2d: elem_in,
             nn.Linear: lambda m, i, o: total.__setitem__(0, total[0] + i[0].numel() * o.shape[-1]),
             ContextualTransformer: lambda m, i, o: total.__setitem__(0, total[0] + m.kernel_size ** 2 * o.numel())}
    for mod in model.modules():
        hook = next((hooks[c] for c in type(mod).__mro__ if c in hooks), None)   # subclasses too (PlaneConv2d)
        if hook is not None:
            mod.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    return total[0] / 1e9
@pytest.mark.parametrize("name,paper,ndigits", [("triplet_resnet50", 4.169, 3), ("cotnet50", 3.3, 1)])
def test_paper_flops_follow_ptflops_convention(name, paper, ndigits):
    """The paper figures are reproduced by the authors' counting convention (see each paper_note)."""
    assert round(_ptflops_style_macs(_meta_attention_spatial_models(name)), ndigits) == paper


def test_model_blocks_take_attn_layer():
    assert GhostBottleneck(8, 24, 12).attn.__class__ is torch.nn.Identity   # GhostNet: SE only where listed
    assert isinstance(GhostBottleneck(8, 24, 12, attn_layer="eca").attn, vb.block_info("eca").cls)
    m = CondConvMBConv(16, 16, num_experts=2)          # EfficientNet's SE by default: in_channels // 4 wide
    assert isinstance(m.attn, SqueezeExcite) and m.attn.fc1.out_channels == 4
    assert isinstance(CondConvMBConv(16, 16, num_experts=2, attn_layer=None).attn, torch.nn.Identity)
    assert PreNormMBConv(16, 16).mbconv.attn.fc1.out_channels == 16      # a quarter of the expanded 64


@pytest.mark.parametrize("name", ["scnet50", "res2net50_26w_4s"])
def test_stride_on_the_spatial_convolutions(name):
    m = _meta_conv_variant_models(name)
    blk = m.stages[1][0]
    assert blk.conv1.conv.stride == (1, 1)


@pytest.mark.parametrize("name", ["mixer_s16", "resmlp_12", "gmlp_ti16", "vip_s7", "smlpnet_t", "repmlpnet_t224"])
def test_fixed_size_models_reject_other_sizes(name):
    with torch.device("meta"):
        m = vb.create_model(name)
    with pytest.raises(ValueError, match="size|tokens"):
        m(torch.empty(1, 3, 192, 192, device="meta"))


@pytest.mark.parametrize("name", ["repvgg_a0", "parnet_s"])
def test_features_survive_reparameterize(name):
    """The feature plan names module paths that folding keeps (it replaces submodules inside the blocks): the
    folded model gives the same features, and a folded features-only backbone runs."""
    torch.manual_seed(0)
    m = randomize_bn_stats(vb.create_model(name)).double().eval()
    x = torch.randn(1, 3, 48, 40, dtype=torch.float64)
    with torch.no_grad():
        before = m.forward_intermediates(x, intermediates_only=True)
        vb.reparameterize(m)
        after = m.forward_intermediates(x, intermediates_only=True)
    assert len(before) == len(after) == 5
    for a, b in zip(before, after):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
    fx = vb.reparameterize(vb.create_model(name, features_only=True, out_indices=(1, 3)).eval())
    with torch.no_grad():
        assert [f.shape[1] for f in fx(torch.randn(1, 3, 32, 32))] == fx.feature_info.channels()
@pytest.mark.parametrize("name", ["repvgg_a0", "parnet_s"])
def test_drop_path_rate_is_accepted_without_residual_branches(name):
    """Neither network has a residual branch to drop: the rate is accepted and changes nothing."""
    torch.manual_seed(0)
    a = vb.create_model(name, drop_path_rate=0.3).train()
    torch.manual_seed(0)
    b = vb.create_model(name).train()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(a(x), b(x))
