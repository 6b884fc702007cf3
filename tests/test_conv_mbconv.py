"""MBConv against the paper's equations written with torch.nn.functional in float64."""
import torch
import torch.nn.functional as F

import visionblocks as vb
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
    m = vb.create_block("mbconv", 40, 80, kernel_size=3, stride=2, expand_ratio=6, se_ratio=0.25)
    assert m.attn.fc1.out_channels == 10  # EfficientNet: int(in_channels * se_ratio)
    hidden = 240
    expected = (40 * hidden + 2 * hidden) + (hidden * 9 + 2 * hidden) + (hidden * 10 + 10 + 10 * hidden + hidden) \
        + (hidden * 80 + 2 * 80)
    assert sum(p.numel() for p in m.parameters()) == expected


def test_mbconv_expand_ratio_one_has_no_expansion_and_attn_factory():
    m = vb.create_block("mbconv", 32, 16, expand_ratio=1, se_ratio=0.0, act_layer="relu6",
                        attn_layer=lambda c: vb.create_block("eca", c))
    assert isinstance(m.conv_pw, torch.nn.Identity)
    assert type(m.attn).__name__ == "EfficientChannelAttention" and m.attn.channels == 32
