"""Tests of :mod:`visionblocks.blocks.attention.eca`."""
import math

import pytest
import torch

import visionblocks as vb
from visionblocks.blocks.attention.eca import eca_kernel_size


@pytest.mark.parametrize("channels,k", [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7), (16, 3)])
def test_eca_adaptive_kernel_size(channels, k):
    t = int(abs((math.log(channels, 2) + 1) / 2))
    assert eca_kernel_size(channels) == (t if t % 2 else t + 1) == k
    assert vb.create_block("eca", channels).conv.kernel_size == (k,)
def test_eca_is_a_1d_conv_across_pooled_channels():
    m = vb.create_block("eca", 64).double()
    x = torch.randn(2, 64, 6, 6, dtype=torch.float64)
    w = m.conv.weight.flatten()  # k = 3
    y = x.mean((2, 3))
    pad = torch.cat([y.new_zeros(2, 1), y, y.new_zeros(2, 1)], 1)
    conv = torch.stack([sum(w[j] * pad[:, c + j] for j in range(3)) for c in range(64)], 1)
    torch.testing.assert_close(m(x), x * torch.sigmoid(conv)[:, :, None, None], rtol=1e-12, atol=1e-12)
