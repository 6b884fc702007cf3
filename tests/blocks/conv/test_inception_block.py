"""Tests of :mod:`visionblocks.blocks.conv.inception_block`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb


D = torch.float64
@pytest.mark.parametrize("stride", [1, 2])
def test_inception_block_branches_and_concat_order(stride):
    m = vb.create_block("inception_block", 12, 4 + 6 + 3 + 2, 4, 5, 6, 2, 3, 2, stride=stride).double()
    x = torch.randn(2, 12, 9, 10, dtype=D)
    c = lambda t, cna, p=0, s=1: F.relu(F.conv2d(t, cna.conv.weight, cna.conv.bias, s, p))  # noqa: E731
    b1 = c(x, m.branch1, 0, stride)
    b2 = c(c(x, m.branch2[0]), m.branch2[1], 1, stride)
    b3 = c(c(x, m.branch3[0]), m.branch3[1], 2, stride)
    b4 = c(F.max_pool2d(x, 3, stride, 1), m.branch4[1])
    torch.testing.assert_close(m(x), torch.cat([b1, b2, b3, b4], 1), rtol=1e-10, atol=1e-10)
    assert m(x).shape == (2, 15, -(-9 // stride), -(-10 // stride))
def test_inception_3a_defaults_and_validation():
    m = vb.create_block("inception_block", 192, 256)
    # GoogLeNet Table 1, inception (3a) widths: #1x1 64, #3x3red 96, #3x3 128, #5x5red 16, #5x5 32, pool proj 32
    weights = sum(p.numel() for n, p in m.named_parameters() if n.endswith("weight"))
    assert weights == 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    with pytest.raises(ValueError, match="must equal"):
        vb.create_block("inception_block", 192, 255)
