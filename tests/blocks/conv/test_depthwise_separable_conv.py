"""Tests of :mod:`visionblocks.blocks.conv.depthwise_separable_conv`."""
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.testing import randomize_bn_stats

from _reference import bn_eval as _bn


D = torch.float64
def test_depthwise_separable_is_rank_structured_dense_conv():
    m = vb.create_block("depthwise_separable_conv", 4, 6, 3, 2, norm_layer=None, act_layer=None).double()
    m.conv_dw.conv.bias.data.zero_()
    m.conv_pw.conv.bias.data.zero_()
    dw, pw = m.conv_dw.conv.weight[:, 0], m.conv_pw.conv.weight[:, :, 0, 0]
    dense = pw[:, :, None, None] * dw[None]  # W[o, i, u, v] = P[o, i] D[i, u, v]
    x = torch.randn(2, 4, 9, 8, dtype=D)
    torch.testing.assert_close(m(x), F.conv2d(x, dense, stride=2, padding=1), rtol=1e-10, atol=1e-10)
def test_depthwise_separable_default_matches_mobilenet_equations():
    m = randomize_bn_stats(vb.create_block("depthwise_separable_conv", 8, 16, 3, 2)).double().eval()
    x = torch.randn(2, 8, 9, 10, dtype=D)
    h = F.relu(_bn(F.conv2d(x, m.conv_dw.conv.weight, stride=2, padding=1, groups=8), m.conv_dw.bn))
    ref = F.relu(_bn(F.conv2d(h, m.conv_pw.conv.weight), m.conv_pw.bn))
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert sum(p.numel() for n, p in m.named_parameters() if "conv.weight" in n) == 9 * 8 + 8 * 16
