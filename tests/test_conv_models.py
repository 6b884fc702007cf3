"""Structure and block-level float64 references of the convolution-variant models (EfficientNet-B0,
CondConv-EfficientNet-B0, GhostNet, RedNet, DY-ResNet-18)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.conv.dynamic_conv import DynamicConv, set_dynamic_conv_temperature
from visionblocks.blocks.conv.involution import Involution
from visionblocks.layers import SqueezeExcite
from visionblocks.models.coatnet import PreNormMBConv
from visionblocks.models.efficientnet import CondConvMBConv
from visionblocks.models.ghostnet import GhostBottleneck
from visionblocks.testing import randomize_bn_stats

from _reference import bn_eval as _bn

D = torch.float64


def test_condconv_mbconv_shares_one_routing_and_matches_per_sample_equations():
    m = randomize_bn_stats(CondConvMBConv(8, 8, 3, 1, expand_ratio=3, num_experts=4)).double().eval()
    x = torch.randn(3, 8, 7, 6, dtype=D)
    out = m(x)
    for b in range(3):
        xb = x[b:b + 1]
        r = torch.sigmoid(xb.mean((2, 3)) @ m.routing.weight.T + m.routing.bias)[0]
        mix = lambda cc: (r.view(-1, 1, 1, 1, 1) * cc.weight).sum(0)  # noqa: E731
        h = F.silu(_bn(F.conv2d(xb, mix(m.conv_pw)), m.bn1))
        h = F.silu(_bn(F.conv2d(h, mix(m.conv_dw), padding=1, groups=24), m.bn2))
        se = m.attn
        g = torch.sigmoid(F.conv2d(F.silu(F.conv2d(h.mean((2, 3), keepdim=True), se.fc1.weight, se.fc1.bias)),
                                   se.fc2.weight, se.fc2.bias))
        y = _bn(F.conv2d(h * g, mix(m.conv_pwl)), m.bn3)
        torch.testing.assert_close(out[b:b + 1], xb + y, rtol=1e-10, atol=1e-10)
    assert m.conv_pw.routing is None and m.conv_dw.routing is None and m.conv_pwl.routing is None


def test_efficientnet_b0_and_condconv_structure():
    m = vb.create_model("efficientnet_b0")
    assert len(m.blocks) == 16 and [b.out_channels for b in m.blocks][-1] == 320
    assert m.blocks[0].conv_pw.__class__.__name__ == "Identity"  # MBConv1: no expansion
    c = vb.create_model("condconv_efficientnet_b0_8e")
    kinds = [type(b).__name__ for b in c.blocks]
    assert kinds == ["MBConv"] * 8 + ["CondConvMBConv"] * 8  # stages 112, 192, 320 are CondConv
    assert all(b.routing.out_features == 8 for b in c.blocks[8:])
    x = torch.randn(2, 3, 33, 47)
    assert c.eval()(x).shape == (2, 1000)


def test_ghost_bottleneck_matches_equations_with_se_and_stride():
    m = randomize_bn_stats(GhostBottleneck(8, 24, 12, 5, 2, attn_layer="se")).double().eval()
    x = torch.randn(2, 8, 9, 7, dtype=D)

    def ghost(t, gm, relu):
        a = lambda z: F.relu(z) if relu else z  # noqa: E731
        p = a(_bn(F.conv2d(t, gm.primary.conv.weight), gm.primary.bn))
        q = a(_bn(F.conv2d(p, gm.cheap.conv.weight, padding=1, groups=p.shape[1]), gm.cheap.bn))
        return torch.cat([p, q], 1)[:, :gm.out_channels]

    h = ghost(x, m.ghost1, True)
    h = _bn(F.conv2d(h, m.conv_dw.conv.weight, stride=2, padding=2, groups=24), m.conv_dw.bn)
    se = m.attn
    s = F.relu(F.conv2d(h.mean((2, 3), keepdim=True), se.fc1.weight, se.fc1.bias))
    h = h * F.hardsigmoid(F.conv2d(s, se.fc2.weight, se.fc2.bias))
    y = ghost(h, m.ghost2, False)
    sc = m.shortcut
    short = _bn(F.conv2d(_bn(F.conv2d(x, sc[0].conv.weight, stride=2, padding=2, groups=8), sc[0].bn),
                         sc[1].conv.weight), sc[1].bn)
    torch.testing.assert_close(m(x), y + short, rtol=1e-10, atol=1e-10)
    assert se.fc1.out_channels == 8  # make_divisible(24 / 4, 4)


@pytest.mark.parametrize("build, ratio, width", [
    (lambda **kw: GhostBottleneck(8, 40, 12, **kw), 0.25, 12),       # make_divisible(40 * 0.25, 4)
    (lambda **kw: CondConvMBConv(10, 10, num_experts=2, **kw), 0.25, 2),  # max(1, int(10 * 0.25))
    (lambda **kw: PreNormMBConv(10, 10, **kw), 0.25, 10),            # a quarter of the expanded 40
    (lambda **kw: PreNormMBConv(10, 10, **kw), 0.5, 20),
])
def test_deprecated_se_ratio_keeps_the_papers_se_width(build, ratio, width):
    with pytest.warns(DeprecationWarning, match="se_ratio"):
        m = build(se_ratio=ratio)
    se = m.mbconv.attn if hasattr(m, "mbconv") else m.attn
    assert isinstance(se, SqueezeExcite) and se.fc1.out_channels == width
    with pytest.warns(DeprecationWarning):
        m0 = build(se_ratio=0.0)
    assert isinstance(m0.mbconv.attn if hasattr(m0, "mbconv") else m0.attn, torch.nn.Identity)
    with pytest.raises(TypeError, match="se_ratio"), pytest.warns(DeprecationWarning):
        build(se_ratio=ratio, attn_layer="se")


def test_model_blocks_take_attn_layer():
    assert GhostBottleneck(8, 24, 12).attn.__class__ is torch.nn.Identity   # GhostNet: SE only where listed
    assert isinstance(GhostBottleneck(8, 24, 12, attn_layer="eca").attn, vb.block_info("eca").cls)
    m = CondConvMBConv(16, 16, num_experts=2)          # EfficientNet's SE by default: in_channels // 4 wide
    assert isinstance(m.attn, SqueezeExcite) and m.attn.fc1.out_channels == 4
    assert isinstance(CondConvMBConv(16, 16, num_experts=2, attn_layer=None).attn, torch.nn.Identity)
    assert PreNormMBConv(16, 16).mbconv.attn.fc1.out_channels == 16      # a quarter of the expanded 64


def test_rednet_uses_involution_with_stride_on_it():
    m = vb.create_model("rednet26")
    invs = [mod for mod in m.modules() if isinstance(mod, Involution)]
    assert len(invs) == 1 + 8 and invs[0].kernel_size == 3 and all(i.kernel_size == 7 for i in invs[1:])
    assert [i.stride for i in invs[1:]] == [1, 2, 1, 2, 1, 1, 1, 2]
    assert not any(isinstance(mod, torch.nn.Conv2d) and mod.kernel_size == (3, 3) for mod in m.stages.modules())
    with torch.no_grad():
        assert m.eval()(torch.randn(1, 3, 45, 39)).shape == (1, 1000)


def test_dy_resnet18_dynamic_convs_and_temperature():
    m = vb.create_model("dy_resnet18")
    dy = [mod for mod in m.modules() if isinstance(mod, DynamicConv)]
    assert len(dy) == 16 and all(d.num_kernels == 4 and d.bias is None for d in dy)
    assert not any(isinstance(mod, DynamicConv) for mod in m.stem.modules())  # the first layer stays static
    set_dynamic_conv_temperature(m, 1.0)
    assert all(float(d.temperature) == 1.0 for d in dy)


@pytest.mark.parametrize("name, channels", [("efficientnet_b0", [16, 24, 40, 112, 320]),
                                            ("condconv_efficientnet_b0_8e", [16, 24, 40, 112, 320]),
                                            ("ghostnet_100", [16, 24, 40, 112, 160])])
def test_features_are_the_last_block_at_each_resolution(name, channels):
    """As timm: the last block at /2, /4, /8, /16, /32, before the 1x1 head convolution (forward_final)."""
    m = vb.create_model(name).eval()
    assert m.feature_info.channels() == channels and m.feature_info.reduction() == [2, 4, 8, 16, 32]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final, feats = m.forward_intermediates(x)
        head_conv = m.conv_head if hasattr(m, "conv_head") and name != "ghostnet_100" else m.blocks[-1]
        torch.testing.assert_close(final, head_conv(feats[-1]))
        normed = m.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)[0]
    torch.testing.assert_close(normed, feats[-1])  # the head convolution is no norm


@pytest.mark.parametrize("name", ["efficientnet_b0", "condconv_efficientnet_b0_8e"])
def test_efficientnet_output_stride_dilates_the_depthwise_convolutions(name):
    """DeepLab: the stages past the output stride run at stride 1 with dilated depthwise convolutions (the first
    block of such a stage keeps the previous dilation); parameters unchanged; the features before the cut are
    the native ones."""
    torch.manual_seed(0)
    ref = vb.create_model(name).eval()
    x = torch.randn(1, 3, 64, 64)
    # blocks per stage 1, 2, 2, 3, 3, 4, 1; stages 3 (blocks 5-7) and 5 (blocks 11-14) are the strided ones
    for os_, dil, first in ((16, [1] * 12 + [2] * 4, 11), (8, [1] * 6 + [2] * 6 + [4] * 4, 5)):
        m = vb.create_model(name, output_stride=os_).eval()
        m.load_state_dict(ref.state_dict())
        dw = [b.conv_dw.conv if hasattr(b.conv_dw, "conv") else b.conv_dw for b in m.blocks]
        assert [c.dilation[0] for c in dw] == dil and all(c.stride == (1, 1) for c in dw[first:])
        assert m.feature_info.reduction() == [min(r, os_) for r in (2, 4, 8, 16, 32)]
        with torch.no_grad():
            a = ref.forward_intermediates(x, intermediates_only=True)
            b = m.forward_intermediates(x, intermediates_only=True)
        n_same = 4 if os_ == 16 else 3
        for p, q in zip(a[:n_same], b[:n_same]):
            torch.testing.assert_close(q, p, rtol=0, atol=0)
        assert b[-1].shape[-2:] == (64 // os_, 64 // os_)
    with pytest.raises(ValueError, match="output_stride"):
        vb.create_model(name, output_stride=4)


def test_ghostnet_head_and_reset_classifier():
    """GhostNet's head: pooling, 1x1 conv to 1280 + ReLU, dropout, head.fc; global_pool sets the pooling."""
    m = vb.create_model("ghostnet_100", num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    assert m.get_classifier() is m.head.fc and m.num_features == 1280
    with torch.no_grad():
        feats = m.forward_features(x)
        assert feats.shape[1] == 960
        m.reset_classifier(0, global_pool="max")
        torch.testing.assert_close(m(x), F.relu(m.conv_head(feats.amax((2, 3), keepdim=True))).flatten(1))
        m.reset_classifier(0, global_pool="")
        assert m(x).shape == (2, 1280, 2, 2)
        m.reset_classifier(4, global_pool="avg")
        assert m(x).shape == (2, 4) and m.num_classes == 4
    with pytest.raises(ValueError, match="global_pool"):
        m.reset_classifier(3, global_pool="")
    with pytest.raises(ValueError, match="global_pool"):
        m.reset_classifier(3, global_pool="mean")


def test_ghost_bottleneck_drop_path_drops_the_residual_branch():
    m = GhostBottleneck(8, 24, 8, drop_path=0.5).train()
    assert m.drop_path.drop_prob == 0.5
    x = torch.randn(64, 8, 5, 5)
    torch.manual_seed(0)
    y = m(x)
    branch = m.ghost2(m.attn(m.conv_dw(m.ghost1(x))))
    dropped = [torch.allclose(y[i], x[i]) for i in range(64)]
    assert 10 < sum(dropped) < 54  # whole samples keep only the shortcut
    kept = [i for i in range(64) if not dropped[i]]
    torch.testing.assert_close(y[kept], x[kept] + 2 * branch[kept])
    rates = [b.drop_path.drop_prob if b.drop_path.__class__.__name__ == "DropPath" else 0.0
             for b in vb.create_model("ghostnet_100", drop_path_rate=0.15).blocks[:16]]
    assert rates[0] == 0.0 and abs(rates[-1] - 0.15) < 1e-12 and rates == sorted(rates)


def test_dilate_convs_is_the_atrous_conversion():
    from visionblocks.layers import ConvNormAct
    from visionblocks.layers.dilation import dilate_convs
    block = nn.Sequential(ConvNormAct(4, 4, 5, groups=4), ConvNormAct(4, 6, 1))
    x = torch.randn(1, 4, 9, 8)
    w = block[0].conv.weight.clone()
    assert dilate_convs(block, 3) is block
    assert block[0].conv.dilation == (3, 3) and block[0].conv.padding == (6, 6) and torch.equal(block[0].conv.weight, w)
    assert block[1].conv.dilation == (1, 1) and block[1].conv.padding == (0, 0)  # 1x1 untouched
    with torch.no_grad():
        ref = F.conv2d(x, w, padding=6, dilation=3, groups=4)
        torch.testing.assert_close(block[0].conv(x), ref)
    assert block.eval()(x).shape == (1, 6, 9, 8)
    with pytest.raises(ValueError, match="stride-1"):
        dilate_convs(ConvNormAct(4, 4, 3, 2), 2)
    with pytest.raises(ValueError, match="dilation"):
        dilate_convs(block, 0)
