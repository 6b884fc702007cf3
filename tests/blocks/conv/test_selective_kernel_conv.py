"""Tests of :mod:`visionblocks.blocks.conv.selective_kernel_conv`."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _randomize, bn_eval as _bn


D = torch.float64
def _sk_reference(m, x):
    """Eqs. 1-6 of SKNet: U = sum U_m, s = GAP(U), z = ReLU(BN(W s)), a = softmax over branches, V = sum a U."""
    us = []
    for i, br in enumerate(m.branches):
        d = i + 1
        c = br.conv
        assert c.dilation == (d, d) and c.padding == (d, d) and c.kernel_size == (3, 3)
        us.append(torch.relu(_bn(F.conv2d(x, c.weight, None, c.stride, d, d, c.groups), br.bn)))
    s = sum(us).mean((2, 3))                                                      # (B, C)
    w = m.fuse.conv.weight[:, :, 0, 0]                                            # (d, C)
    z = torch.relu(_bn(s @ w.T, m.fuse.bn))                                       # (B, d)
    a_mats = m.select.weight[:, :, 0, 0].reshape(len(us), m.out_channels, -1)    # M x (C, d)
    logits = torch.stack([z @ a.T for a in a_mats])                               # (M, B, C)
    e = torch.exp(logits - logits.max(0).values)
    weights = e / e.sum(0)
    return sum(weights[i][:, :, None, None] * us[i] for i in range(len(us))), us, weights
@pytest.mark.parametrize("stride,out_channels", [(1, None), (2, 128)])
def test_sk_matches_paper_equations(stride, out_channels):
    m = _randomize(vb.create_block("sk", 64, out_channels=out_channels, stride=stride)).double()
    x = torch.randn(2, 64, 11, 14, dtype=D)
    ref, _, _ = _sk_reference(m, x)
    out = m(x)
    assert out.shape == (2, out_channels or 64, math.ceil(11 / stride), math.ceil(14 / stride))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
def test_sk_one_branch_zeroed_is_other_branch_times_its_weight():
    m = _randomize(vb.create_block("sk", 64)).double()
    with torch.no_grad():  # branch 2 outputs ReLU(0 * ... + 0) = 0
        m.branches[1].bn.weight.zero_()
        m.branches[1].bn.bias.zero_()
    x = torch.randn(2, 64, 9, 10, dtype=D)
    u0 = torch.relu(_bn(F.conv2d(x, m.branches[0].conv.weight, None, 1, 1, 1, 32), m.branches[0].bn))
    s = u0.mean((2, 3))
    z = torch.relu(_bn(s @ m.fuse.conv.weight[:, :, 0, 0].T, m.fuse.bn))
    a = m.select.weight[:, :, 0, 0]
    l0, l1 = z @ a[:64].T, z @ a[64:].T
    w0 = torch.exp(l0) / (torch.exp(l0) + torch.exp(l1))
    torch.testing.assert_close(m(x), u0 * w0[:, :, None, None], rtol=1e-10, atol=1e-10)
def test_sk_paper_widths_and_validation():
    m = vb.create_block("sk", 256)
    assert m.fuse.conv.out_channels == 32  # d = max(C/r, L) = max(16, 32)
    assert all(b.conv.groups == 32 for b in m.branches)
    assert vb.create_block("sk", 1024).fuse.conv.out_channels == 64
    x = torch.randn(1, 64, 7, 9)
    assert vb.create_block("sk", 64).eval()(x).shape == x.shape
    with pytest.raises(ValueError, match="divisible by groups"):
        vb.create_block("sk", 48)


def test_selective_kernel_min_channels_and_former_min_dim():
    import visionblocks as vb
    assert vb.create_block("selective_kernel_conv", 64, groups=8, min_channels=16).fuse.conv.out_channels == 16
    with pytest.warns(DeprecationWarning, match="min_dim"):
        m = vb.create_block("sk", 64, groups=8, reduction=2, min_dim=40)
    assert m.fuse.conv.out_channels == 40  # max(64 // 2, 40)
