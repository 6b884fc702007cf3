"""Tests of :mod:`visionblocks.blocks.conv.transposed_conv`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb


D = torch.float64
@pytest.mark.parametrize("k,s,groups", [(4, 2, 1), (3, 2, 2), (3, 1, 1), (5, 3, 1)])
def test_transposed_conv_is_adjoint_of_conv_and_upsamples_exactly(k, s, groups):
    m = vb.create_block("transposed_conv", 4, 6, k, s, groups=groups, bias=False).double()
    z = torch.randn(2, 4, 5, 7, dtype=D)
    y = m(z)
    assert y.shape == (2, 6, 5 * s, 7 * s)
    # <conv(u), z> == <u, conv_T(z)>, with conv the strided convolution sharing the (transposed) weight
    u = torch.randn_like(y)
    conv_u = F.conv2d(u, m.weight, None, s, m.padding, m.dilation, groups)
    assert conv_u.shape == z.shape
    torch.testing.assert_close((conv_u * z).sum(), (u * y).sum(), rtol=1e-10, atol=1e-10)
    # zero insertion then a stride-1 convolution with the flipped, channel-transposed kernel
    zi = torch.zeros(2, 4, (5 - 1) * s + 1, (7 - 1) * s + 1, dtype=D)
    zi[:, :, ::s, ::s] = z
    p, op = m.padding[0], m.output_padding[0]
    zi = F.pad(zi, (k - 1 - p, k - 1 - p + op, k - 1 - p, k - 1 - p + op))
    cin_g, cout_g = 4 // groups, 6 // groups
    wt = m.weight.view(groups, cin_g, cout_g, k, k).transpose(1, 2).reshape(6, cin_g, k, k).flip(-1, -2)
    torch.testing.assert_close(y, F.conv2d(zi, wt, groups=groups), rtol=1e-10, atol=1e-10)
def test_transposed_conv_validation():
    with pytest.raises(ValueError, match="output of exactly"):
        vb.create_block("transposed_conv", 4, 4, 4, 1)
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("transposed_conv", 4, 6, groups=4)
    m = vb.create_block("transposed_conv", 4, 4, 3, 1)  # odd kernel, stride 1: size kept
    assert m(torch.randn(1, 4, 5, 6)).shape == (1, 4, 5, 6)
