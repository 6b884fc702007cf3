"""Structure of the octave/SC/ResNeSt/Res2Net/CoConv reference models (cheap checks; the contract covers
forward, compile and export)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.conv.coconv import CoConv
from visionblocks.blocks.conv.res2net_block import Res2NetBlock
from visionblocks.blocks.conv.split_attention_conv import SplitAttentionConv
from visionblocks.models.coresnet import CoBottleneck
from visionblocks.testing import count_params, randomize_bn_stats

RESNET50_PARAMS = 25_557_032


def _meta(name, **kw):
    with torch.device("meta"):
        return vb.create_model(name, **kw)


def test_octresnet50_frequency_layout():
    m = _meta("octresnet50")
    assert count_params(m) == RESNET50_PARAMS           # octave convolutions keep the kernel count
    for s, stage in enumerate(m.stages):
        for i, blk in enumerate(stage):
            convs = [blk.conv1.conv, blk.conv2.conv, blk.conv3.conv]
            first_in = 0.0 if (s, i) == (0, 0) else (0.5 if s < 3 or i == 0 else 0.0)
            inner = 0.5 if s < 3 else 0.0
            assert convs[0].alpha_in == first_in and all(c.alpha_out == inner for c in convs)
            assert all(c.alpha_in == inner for c in convs[1:])
            assert blk.conv2.conv.stride == (2 if i == 0 and s > 0 else 1)


def test_octresnet50_runs_at_odd_size():
    m = vb.create_model("octresnet50", num_classes=5).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 21, 19)).shape == (1, 5)


def test_octresnet50_features_join_the_high_and_low_parts():
    """An octave stage's feature is its high part with the low part (nearest-upsampled) after it, all 4 planes
    channels at the high part's reduction; the last stage is single-frequency."""
    m = vb.create_model("octresnet50").eval()
    assert m.feature_info.channels() == [64, 256, 512, 1024, 2048]
    x = torch.randn(1, 3, 42, 38)
    with torch.no_grad():
        feats = m.forward_intermediates(x, intermediates_only=True)
        t = m.stem[1](m.stem[0](x))
        pairs = []
        for stage in m.stages:
            t = stage(t)
            pairs.append(t)
    for (y_h, y_l), f in zip(pairs, feats[1:]):
        assert f.shape[-2:] == y_h.shape[-2:]
        torch.testing.assert_close(f[:, :y_h.shape[1]], y_h, rtol=0, atol=0)
        if y_l is not None:
            assert y_l.shape[-1] == (y_h.shape[-1] + 1) // 2 or y_l.shape[-1] == y_h.shape[-1] // 2
            up = F.interpolate(y_l, size=y_h.shape[-2:], mode="nearest")
            torch.testing.assert_close(f[:, y_h.shape[1]:], up, rtol=0, atol=0)
        else:
            assert f.shape[1] == y_h.shape[1]


def test_octresnet_drop_path_drops_both_parts_of_a_sample_together():
    from visionblocks.models.octresnet import OctBottleneck, OctDropPath
    blk = OctBottleneck(64, 16, drop_path=0.5).train()
    assert isinstance(blk.drop_path, OctDropPath)
    y_h, y_l = torch.randn(64, 32, 4, 4), torch.randn(64, 32, 2, 2)
    torch.manual_seed(0)
    d_h, d_l = blk.drop_path((y_h, y_l))
    kept_h = d_h.flatten(1).abs().sum(1) > 0
    kept_l = d_l.flatten(1).abs().sum(1) > 0
    assert torch.equal(kept_h, kept_l) and 10 < int(kept_h.sum()) < 54
    torch.testing.assert_close(d_h[kept_h], 2 * y_h[kept_h])
    rates = [b.drop_path.drop_prob for s in vb.create_model("octresnet50", drop_path_rate=0.2).stages for b in s
             if isinstance(b.drop_path, OctDropPath)]
    assert len(rates) == 15 and abs(rates[-1] - 0.2) < 1e-12  # the first block's rate is 0: no DropPath


def test_coconv_resnet50_levels_and_end_of_stage_bn():
    m = _meta("coconv_resnet50")
    assert count_params(m) == RESNET50_PARAMS           # CoConv keeps the 3x3's parameters
    for stage, levels in zip(m.stages, (4, 3, 2, 1)):
        for i, blk in enumerate(stage):
            assert isinstance(blk.conv2.conv, CoConv) and len(blk.conv2.conv.levels) == levels
            assert blk.bn_after_add == (i == len(stage) - 1)


def test_coconv_bottleneck_bn_after_addition():
    torch.manual_seed(0)
    blk = CoBottleneck(64, 16, stride=2, stride_3x3=True, bn_after_add=True).double()
    randomize_bn_stats(blk, seed=5)
    blk.eval()
    x = torch.randn(2, 64, 9, 9, dtype=torch.float64)
    c3, bn = blk.conv3.conv, blk.conv3.bn
    y = F.conv2d(blk.conv2(blk.conv1(x)), c3.weight) + blk.shortcut(x)
    ref = F.relu((y - bn.running_mean.view(1, -1, 1, 1)) / (bn.running_var.view(1, -1, 1, 1) + bn.eps).sqrt()
                 * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
    torch.testing.assert_close(blk(x), ref, rtol=1e-10, atol=1e-10)


def test_coconv_resnet50_block_kwargs_merge_with_the_variants():
    every = _meta("coconv_resnet50", block_kwargs={"bn_after_add": True})  # the user's entries add to the variant's
    assert all(blk.bn_after_add for stage in every.stages for blk in stage)
    none = _meta("coconv_resnet50", last_block_kwargs={"bn_after_add": False})  # and win over them
    assert not any(blk.bn_after_add for stage in none.stages for blk in stage)
    assert all(isinstance(blk.conv2.conv, CoConv) for stage in none.stages for blk in stage)


def test_resnest50_layout():
    m = _meta("resnest50")
    assert [blk.conv.out_channels for blk in m.stem[:3]] == [32, 32, 64]        # deep stem 32-32-64
    for s, stage in enumerate(m.stages):
        for i, blk in enumerate(stage):
            if i == 0 and s > 0:   # avd: split attention at stride 1, then a 3x3 average pooling with the stride
                splat_conv = next(c for c in blk.conv2[0].modules() if isinstance(c, nn.Conv2d))
                assert isinstance(blk.conv2[0], SplitAttentionConv) and splat_conv.stride == (1, 1)
                assert isinstance(blk.conv2[1], nn.AvgPool2d) and blk.conv2[1].stride == 2
                assert isinstance(blk.shortcut[0], nn.AvgPool2d)                   # avg_down shortcut
            else:
                assert isinstance(blk.conv2, SplitAttentionConv) and blk.conv2.radix == 2


def test_res2net50_widths_and_stage_blocks():
    m = _meta("res2net50_26w_4s")
    for stage, width in zip(m.stages, (26, 52, 104, 208)):
        for i, blk in enumerate(stage):
            assert isinstance(blk, Res2NetBlock) and blk.width == width and blk.scale == 4
            assert blk.stage_type == ("stage" if i == 0 else "normal")


@pytest.mark.parametrize("name", ["scnet50", "res2net50_26w_4s"])
def test_stride_on_the_spatial_convolutions(name):
    m = _meta(name)
    blk = m.stages[1][0]
    assert blk.conv1.conv.stride == (1, 1)
