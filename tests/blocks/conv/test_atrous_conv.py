"""Tests of :mod:`visionblocks.blocks.conv.atrous_conv`."""
import torch
import torch.nn.functional as F

import visionblocks as vb


D = torch.float64
def test_atrous_conv_equals_zero_inserted_kernel_and_receptive_field():
    d, k = 3, 3
    m = vb.create_block("atrous_conv", 3, 4, k, dilation=d).double()
    big = torch.zeros(4, 3, d * (k - 1) + 1, d * (k - 1) + 1, dtype=D)
    big[:, :, ::d, ::d] = m.weight
    x = torch.randn(1, 3, 11, 12, dtype=D, requires_grad=True)
    y = m(x)
    torch.testing.assert_close(y, F.conv2d(x, big, m.bias, padding=d * (k - 1) // 2), rtol=1e-10, atol=1e-10)
    y[0, 0, 5, 6].backward()
    support = (x.grad[0].abs().sum(0) != 0).nonzero().tolist()
    expected = [[5 + d * (u - 1), 6 + d * (v - 1)] for u in range(k) for v in range(k)]
    assert sorted(support) == sorted(expected)
