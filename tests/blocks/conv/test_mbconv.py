"""Tests of :mod:`visionblocks.blocks.conv.mbconv`."""
import warnings

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.models.efficientnet import CondConvMBConv
from visionblocks.testing import randomize_bn_stats

from _reference import bn_eval as _bn


def _reference(m, x):
    h = F.silu(_bn(F.conv2d(x, m.conv_pw.conv.weight), m.conv_pw.bn))
    k = m.conv_dw.conv.weight.shape[-1]
    h = F.silu(_bn(F.conv2d(h, m.conv_dw.conv.weight, stride=m.stride, padding=k // 2, groups=h.shape[1]),
                   m.conv_dw.bn))
    s = h.mean((2, 3), keepdim=True)
    se = m.attn
    gate = torch.sigmoid(F.conv2d(F.silu(F.conv2d(s, se.fc1.weight, se.fc1.bias)), se.fc2.weight, se.fc2.bias))
    y = _bn(F.conv2d(h * gate, m.conv_pwl.conv.weight), m.conv_pwl.bn)
    return x + y if m.has_skip else y
def test_mbconv_matches_equations_with_and_without_skip():
    for cin, cout, k, s in [(16, 16, 3, 1), (16, 24, 5, 2)]:
        m = randomize_bn_stats(vb.create_block("mbconv", cin, cout, kernel_size=k, stride=s)).double().eval()
        x = torch.randn(2, cin, 15, 13, dtype=torch.float64)
        assert m.has_skip == (s == 1 and cin == cout)
        torch.testing.assert_close(m(x), _reference(m, x), rtol=1e-10, atol=1e-10)
def test_mbconv_se_width_follows_input_channels_and_params():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default is EfficientNet's block, asked for without a deprecated name
        m = vb.create_block("mbconv", 40, 80, kernel_size=3, stride=2, expand_ratio=6)
    assert m.attn.fc1.out_channels == 10  # EfficientNet: int(in_channels * 0.25), of the block *input*
    hidden = 240
    expected = (40 * hidden + 2 * hidden) + (hidden * 9 + 2 * hidden) + (hidden * 10 + 10 + 10 * hidden + hidden) \
        + (hidden * 80 + 2 * 80)
    assert sum(p.numel() for p in m.parameters()) == expected
def test_mbconv_expand_ratio_one_has_no_expansion_and_attn_factory():
    m = vb.create_block("mbconv", 32, 16, expand_ratio=1, act_layer="relu6",
                        attn_layer=lambda c: vb.create_block("eca", c))
    assert isinstance(m.conv_pw, torch.nn.Identity)
    assert type(m.attn).__name__ == "EfficientChannelAttention" and m.attn.channels == 32
def test_mbconv_attn_layer_forms():
    assert isinstance(vb.create_block("mbconv", 16, 16, attn_layer=None).attn, torch.nn.Identity)  # MobileNetV2
    m = vb.create_block("mbconv", 16, 24, expand_ratio=4, attn_layer="eca")
    assert type(m.attn).__name__ == "EfficientChannelAttention" and m.attn.channels == 64
    se = vb.create_block("mbconv", 16, 24, attn_layer="SE", attn_kwargs={"rd_channels": 7}).attn
    assert se.fc1.out_channels == 7 and isinstance(se.act, torch.nn.SiLU)       # the block's activation
    se = vb.create_block("mbconv", 16, 24, attn_layer="se", attn_kwargs={"reduction": 8, "act_layer": "relu"}).attn
    assert se.fc1.out_channels == 96 // 8 and isinstance(se.act, torch.nn.ReLU)  # SE's own rule, of its channels
    with pytest.raises(ValueError, match="nchw"):
        vb.create_block("mbconv", 16, 16, attn_layer="graph_conv")
    with pytest.raises(TypeError, match="attn_layer"):
        vb.create_block("mbconv", 16, 16, attn_layer=0.25)
@pytest.mark.parametrize("se_ratio", [0.25, 0.5, 0.0])
def test_mbconv_deprecated_se_ratio_keeps_its_widths(se_ratio):
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match="se_ratio"):
        old = vb.create_block("mbconv", 22, 24, 5, 2, se_ratio=se_ratio)
    torch.manual_seed(0)
    new = vb.create_block("mbconv", 22, 24, 5, 2, attn_layer="se" if se_ratio else None,
                          attn_kwargs={"rd_channels": max(1, int(22 * se_ratio))})
    assert [(k, v.shape) for k, v in old.state_dict().items()] == [(k, v.shape) for k, v in new.state_dict().items()]
    x = torch.randn(2, 22, 9, 9)
    torch.testing.assert_close(old.eval()(x), new.eval()(x), rtol=0, atol=0)
def test_mbconv_deprecated_se_ratio_yields_to_an_attention_factory():
    eca = lambda c: vb.create_block("eca", c)  # noqa: E731
    with pytest.warns(DeprecationWarning):  # MobileNetV2 with coordinate attention called it so
        m = vb.create_block("mbconv", 16, 16, se_ratio=0.0, attn_layer=eca)
    assert type(m.attn).__name__ == "EfficientChannelAttention"
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="se_ratio"):
        vb.create_block("mbconv", 16, 16, se_ratio=1.5)


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
