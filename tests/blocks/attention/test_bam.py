"""Tests of :mod:`visionblocks.blocks.attention.bam`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _cna, _randomize, bn_eval as _bn


D = torch.float64
def test_bam_matches_paper_equations():
    m = _randomize(vb.create_block("bam", 64)).double()
    x = torch.randn(2, 64, 13, 10, dtype=D)
    cg, sg = m.channel_gate, m.spatial_gate
    s = x.mean((2, 3))                                                             # (B, C)
    w0, b0 = cg.mlp.fc1.weight[:, :, 0, 0], cg.mlp.fc1.bias
    w1, b1 = cg.mlp.fc2.weight[:, :, 0, 0], cg.mlp.fc2.bias
    mc = _bn(torch.relu(s @ w0.T + b0) @ w1.T + b1, cg.bn)[:, :, None, None]     # Eq. 2
    f = _cna(x, sg.body[0])
    for unit in sg.body[1:3]:
        assert unit.conv.dilation == (4, 4)
        f = _cna(f, unit, padding=4)
    ms = _bn(F.conv2d(f, sg.body[3].weight, sg.body[3].bias), sg.bn)            # Eq. 3, (B, 1, H, W)
    ref = x + x * torch.sigmoid(mc + ms)                                           # Eqs. 1, 4
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
@pytest.mark.parametrize("size", [(1, 1), (5, 3), (8, 8), (31, 17)])
def test_bam_keeps_any_size_and_batch_one_eval(size):
    m = vb.create_block("bam", 32).eval()
    x = torch.randn(1, 32, *size)
    with torch.no_grad():
        assert m(x).shape == x.shape
