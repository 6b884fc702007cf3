"""Tests of :mod:`visionblocks.blocks.conv.ghost_conv`."""
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.testing import randomize_bn_stats

from _reference import bn_eval as _bn


D = torch.float64
def test_ghost_conv_primary_and_ghost_features():
    for out, stride in [(16, 1), (15, 2)]:
        m = randomize_bn_stats(vb.create_block("ghost_conv", 8, out, 1, stride)).double().eval()
        x = torch.randn(2, 8, 9, 11, dtype=D)
        y = m(x)
        init = -(-out // 2)
        assert y.shape == (2, out, -(-9 // stride), -(-11 // stride))
        prim = F.relu(_bn(F.conv2d(x, m.primary.conv.weight, stride=stride), m.primary.bn))
        ghost = F.relu(_bn(F.conv2d(prim, m.cheap.conv.weight, padding=1, groups=init), m.cheap.bn))
        torch.testing.assert_close(y[:, :init], prim, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(y[:, init:], ghost[:, :out - init], rtol=1e-10, atol=1e-10)
    m = vb.create_block("ghost_conv", 64, 64, act_layer=None)
    convs = m.primary.conv.weight.numel() + m.cheap.conv.weight.numel()
    assert convs == 64 * 32 + 32 * 9 and convs < 0.6 * 64 * 64  # about 1/s of the dense 1x1 (s = 2)
    m3 = vb.create_block("ghost_conv", 6, 12, ratio=3)
    assert m3.primary.conv.out_channels == 4 and m3.cheap.conv.out_channels == 8
