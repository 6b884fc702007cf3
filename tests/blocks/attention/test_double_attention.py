"""Tests of :mod:`visionblocks.blocks.attention.double_attention`."""
import torch

import visionblocks as vb

from _reference import _randomize


D = torch.float64
def test_double_attention_by_einsums():
    m = _randomize(vb.create_block("double_attention", 32), scale=0.5).double()
    x = torch.randn(2, 32, 7, 6, dtype=D)
    X = x.flatten(2)                                                                # (B, C, N)
    lin = lambda conv: torch.einsum("oc,bcn->bon", conv.weight[:, :, 0, 0], X) + conv.bias[None, :, None]
    A, Bt, Vt = lin(m.phi), lin(m.theta), lin(m.rho)
    Bn = torch.exp(Bt) / torch.exp(Bt).sum(2, keepdim=True)       # attention maps: over the positions
    Vn = torch.exp(Vt) / torch.exp(Vt).sum(1, keepdim=True)       # attention vectors: over the n maps
    Gd = torch.einsum("bmn,bkn->bmk", A, Bn)                      # G = A B^T
    Z = torch.einsum("bmk,bkn->bmn", Gd, Vn)                      # z_i = G v_i
    ref = X + torch.einsum("cm,bmn->bcn", m.proj.weight[:, :, 0, 0], Z) + m.proj.bias[None, :, None]
    torch.testing.assert_close(m(x).flatten(2), ref, rtol=1e-10, atol=1e-10)
    assert (m.c_m, m.c_n) == (8, 8)
