"""Tests of :mod:`visionblocks.blocks.conv.spatially_separable_conv`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb


D = torch.float64
@pytest.mark.parametrize("k,s,mid", [(3, 1, 5), (3, 2, 6), (5, 2, 3)])
def test_spatially_separable_equals_low_rank_kxk_conv(k, s, mid):
    m = vb.create_block("spatially_separable_conv", 4, 6, k, s, mid_channels=mid).double()
    a = m.conv_v.conv.weight[:, :, :, 0]  # (mid, in, K)
    b = m.conv_h.conv.weight[:, :, 0, :]  # (out, mid, K)
    w = torch.einsum("omv,miu->oiuv", b, a)
    x = torch.randn(2, 4, 9, 7, dtype=D)
    ref = F.conv2d(x, w, m.conv_h.conv.bias, stride=s, padding=k // 2)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert sum(p.numel() for p in m.parameters()) == k * mid * (4 + 6) + 6
