"""Tests of :mod:`visionblocks.blocks.conv.group_conv`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb


D = torch.float64
def test_group_conv_is_block_diagonal_dense_conv():
    m = vb.create_block("group_conv", 6, 9, 3, groups=3).double()
    dense = torch.zeros(9, 6, 3, 3, dtype=D)
    for g in range(3):
        dense[3 * g:3 * g + 3, 2 * g:2 * g + 2] = m.weight[3 * g:3 * g + 3]
    x = torch.randn(2, 6, 5, 8, dtype=D)
    torch.testing.assert_close(m(x), F.conv2d(x, dense, m.bias, padding=1), rtol=1e-10, atol=1e-10)
    assert m.weight.numel() == 9 * 6 * 9 // 3
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("group_conv", 6, 8, 3, groups=3)
