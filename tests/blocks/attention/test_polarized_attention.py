"""Tests of :mod:`visionblocks.blocks.attention.polarized_attention`."""
import math

import pytest
import torch

import visionblocks as vb

from _reference import _build


def _softmax_loop(v):
    e = [math.exp(float(t)) for t in v]
    s = sum(e)
    return torch.tensor([t / s for t in e], dtype=torch.float64)
def _psa_channel_ref(x, g):
    """A^ch = sigmoid(LN(W_z (W_v x) softmax(W_q x))) by explicit softmax, per sample."""
    out = []
    for xb in x:
        C, H, W = xb.shape
        xf = xb.reshape(C, H * W)
        v = g.wv.weight[:, :, 0, 0] @ xf                       # (C/2, HW)
        q = _softmax_loop(g.wq.weight[0, :, 0, 0] @ xf)        # (HW,)
        z = g.wz.weight[:, :, 0, 0] @ (v @ q)                  # (C,)
        mu, var = z.mean(), z.var(unbiased=False)
        z = (z - mu) / torch.sqrt(var + g.ln.eps) * g.ln.weight + g.ln.bias
        out.append(torch.sigmoid(z))
    return torch.stack(out)[:, :, None, None]
def _psa_spatial_ref(x, g):
    """A^sp = sigmoid(softmax(GAP(W_q x))^T W_v x) by explicit softmax, per sample."""
    out = []
    for xb in x:
        C, H, W = xb.shape
        xf = xb.reshape(C, H * W)
        q = _softmax_loop((g.wq.weight[:, :, 0, 0] @ xf).mean(1))   # (C/2,)
        v = g.wv.weight[:, :, 0, 0] @ xf                             # (C/2, HW)
        out.append(torch.sigmoid(q @ v).reshape(1, H, W))
    return torch.stack(out)
def test_psa_branches_by_explicit_softmax():
    m = _build("polarized_attention_parallel", 16)
    with torch.no_grad():
        m.channel_gate.ln.weight.copy_(torch.rand(16, dtype=torch.float64) + 0.5)
        m.channel_gate.ln.bias.copy_(torch.randn(16, dtype=torch.float64))
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    a_ch, a_sp = _psa_channel_ref(x, m.channel_gate), _psa_spatial_ref(x, m.spatial_gate)
    torch.testing.assert_close(m.channel_gate(x), a_ch, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m.spatial_gate(x), a_sp, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m(x), x * a_ch + x * a_sp, rtol=1e-10, atol=1e-12)
def test_psa_sequential_composition():
    m = _build("polarized_attention_sequential", 8)
    x = torch.randn(3, 8, 4, 7, dtype=torch.float64)
    z = x * _psa_channel_ref(x, m.channel_gate)
    torch.testing.assert_close(m(x), z * _psa_spatial_ref(z, m.spatial_gate), rtol=1e-10, atol=1e-12)
def test_psa_validates_reduction():
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("polarized_attention_parallel", 10, reduction=4)
