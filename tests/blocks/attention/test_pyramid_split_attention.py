"""Tests of :mod:`visionblocks.blocks.attention.pyramid_split_attention`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _randomize


D = torch.float64
@pytest.mark.parametrize("stride", [1, 2])
def test_psa_matches_paper_equations(stride):
    m = _randomize(vb.create_block("pyramid_split_attention", 64, stride=stride), scale=0.5).double()
    x = torch.randn(2, 64, 9, 12, dtype=D)
    feats = []
    for conv, k, g in zip(m.convs, (3, 5, 7, 9), (1, 4, 8, 16)):
        assert conv.weight.shape == (16, 64 // g, k, k) and conv.groups == g
        feats.append(F.conv2d(x, conv.weight, None, stride, k // 2, 1, g))        # F_i = Conv(k_i, G_i)(X)
    w0, b0 = m.se.fc1.weight[:, :, 0, 0], m.se.fc1.bias
    w1, b1 = m.se.fc2.weight[:, :, 0, 0], m.se.fc2.bias
    zs = [torch.sigmoid(torch.relu(f.mean((2, 3)) @ w0.T + b0) @ w1.T + b1) for f in feats]  # Z_i (B, C/S)
    denom = sum(torch.exp(z) for z in zs)
    ref = torch.cat([f * (torch.exp(z) / denom)[:, :, None, None] for f, z in zip(feats, zs)], dim=1)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
def test_psa_registers_parameters_and_backward():
    m = vb.create_block("pyramid_split_attention", 64)
    n_conv = sum(64 * 16 // g * k * k for k, g in zip((3, 5, 7, 9), (1, 4, 8, 16)))
    n_se = 16 * 1 + 1 + 1 * 16 + 16
    assert sum(p.numel() for p in m.parameters()) == n_conv + n_se
    x = torch.randn(2, 64, 8, 8, requires_grad=True)
    m(x).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("pyramid_split_attention", 40)
