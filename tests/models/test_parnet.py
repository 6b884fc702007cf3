"""Tests of :mod:`visionblocks.models.parnet`."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.reparam.repvgg_sse_block import RepConv3x3
from visionblocks.models.parnet import PAPER_FIGURES, ParNet, ParNetDownsample, ParNetFusion
from visionblocks.testing import count_macs, randomize_bn_stats

from _reference import _prep, bn_eval as _bn


@pytest.mark.parametrize("size", [(8, 10), (7, 9)])
def test_downsample_block_matches_equations(size):
    """SiLU((BN(conv3x3_s2 x) + BN(conv1x1(avgpool2x2 x))) * 2 sigmoid(W GAP(x))), then channel shuffle."""
    m = _prep(ParNetDownsample(8, 12, stride=2, groups=2))
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    c3, c1 = m.conv.body.conv3x3, m.conv.body.conv1x1
    b3 = _bn(F.conv2d(x, c3.conv.weight, stride=2, padding=1, groups=2), c3.bn)
    H, W = size
    xp = torch.zeros(2, 8, H + H % 2, W + W % 2, dtype=torch.float64)   # zero-padded to even size
    xp[:, :, :H, :W] = x
    pooled = (xp[:, :, 0::2, 0::2] + xp[:, :, 1::2, 0::2] + xp[:, :, 0::2, 1::2] + xp[:, :, 1::2, 1::2]) / 4
    b1 = _bn(F.conv2d(pooled, c1.conv.weight, groups=2), c1.bn)
    gate = 2 * torch.sigmoid(F.conv2d(x.mean((2, 3), keepdim=True), m.se_fc.weight, groups=2))
    y = F.silu((b3 + b1) * gate)
    shuffled = torch.stack([y[:, :6], y[:, 6:]], dim=2).flatten(1, 2)   # channels g0_0, g1_0, g0_1, ...
    torch.testing.assert_close(m(x), shuffled, rtol=1e-10, atol=1e-12)
def test_fusion_interleaves_the_two_streams():
    m = _prep(ParNetFusion(4, 6, stride=1))
    a, b = torch.randn(2, 4, 5, 5, dtype=torch.float64), torch.randn(2, 4, 5, 5, dtype=torch.float64)
    seen = {}
    h = m.block.register_forward_pre_hook(lambda mod, inp: seen.update(x=inp[0]))
    m(a, b)
    h.remove()
    x = seen["x"]
    torch.testing.assert_close(x[:, 0::2], _bn(a, m.bn_a))
    torch.testing.assert_close(x[:, 1::2], _bn(b, m.bn_b))
def test_parnet_reparameterize_keeps_output_and_loads_into_deploy_model():
    """A narrow ParNet (same topology as ParNet-S, small widths to keep the test fast), odd input size."""
    m = _prep(ParNet((16, 32, 64), 96, num_classes=10))
    x = torch.randn(2, 3, 35, 50, dtype=torch.float64)
    with torch.no_grad():
        ref = m(x)
        vb.reparameterize(m)
        assert not any(isinstance(t, RepConv3x3) and not t.is_reparameterized for t in m.modules())
        torch.testing.assert_close(m(x), ref, rtol=1e-8, atol=1e-8)
        fresh = ParNet((16, 32, 64), 96, num_classes=10, deploy=True).double().eval()
        fresh.load_state_dict(m.state_dict())
        torch.testing.assert_close(fresh(x), ref, rtol=1e-8, atol=1e-8)
@pytest.mark.parametrize("name", sorted(PAPER_FIGURES))
def test_folded_parnet_matches_paper_figures(name):
    """The paper counts the folded network, FLOPs = 2 x multiply-adds."""
    params, macs = count_macs(name, deploy=True)
    paper_params, paper_gflops = PAPER_FIGURES[name]
    assert abs(params / 1e6 - paper_params) <= 0.01 * paper_params, (name, params / 1e6, paper_params)
    assert abs(2 * macs / 1e9 - paper_gflops) <= 0.01 * paper_gflops, (name, 2 * macs / 1e9, paper_gflops)


def test_parnet_features_are_the_streams_and_their_fusion():
    """ParNet's features, computed here from its modules in the paper's order: stream 1 (1/4), stream 2 (1/8),
    the fusion of the three streams (1/16), the last downsampling (1/32); pruning drops the later streams."""
    torch.manual_seed(0)
    m = randomize_bn_stats(vb.create_model("parnet_s")).double().eval()
    x = torch.randn(2, 3, 40, 36, dtype=torch.float64)
    with torch.no_grad():
        feats = m.forward_intermediates(x, intermediates_only=True)
        t = m.down1[0](x)
        x1 = m.down1[1](t)
        x2 = m.down2(x1)
        x3 = m.down3(x2)
        s1, s2, s3 = m.streams[0](x1), m.streams[1](x2), m.streams[2](x3)
        fused = m.fuse3(s3, m.fuse2(s2, m.fuse12(s1)))
        want = [t, s1, s2, fused, m.final(fused)]
    for f, w in zip(feats, want):
        torch.testing.assert_close(f, w, rtol=0, atol=0)
    assert m.feature_info.reduction() == [2, 4, 8, 16, 32]
    part = vb.create_model("parnet_s", features_only=True, out_indices=(1,))
    kept = {k.split(".")[0] for k in part.model.state_dict()}
    assert kept == {"down1", "streams"} and all(isinstance(s, nn.Identity) for s in part.model.streams[1:])


def test_named_variants_take_other_widths():
    """The authors' released ParNet-S has 92 stream-1 channels: ``parnet_s(widths=...)`` builds it (the
    variant functions used to pass widths positionally, so the keyword raised 'multiple values')."""
    m = vb.create_model("parnet_s", widths=(92, 192, 384), out_features=1024)
    assert m.feature_info.channels()[1:4] == [92, 192, 384]
    assert m.num_features == 1024 and m.get_classifier().in_features == 1024
    assert vb.create_model("parnet_s").feature_info.channels()[1:4] == [96, 192, 384]
