"""Tests of :mod:`visionblocks.blocks.attention.sge`."""
import torch

import visionblocks as vb

from _reference import _randomize


D = torch.float64
def test_sge_gates_by_hand():
    G = 8
    m = _randomize(vb.create_block("sge", 32, groups=G), scale=1.0).double()
    x = torch.randn(2, 32, 6, 5, dtype=D)
    ref = torch.empty_like(x)
    cg = 32 // G
    for b in range(2):
        for g in range(G):
            xg = x[b, g * cg:(g + 1) * cg].flatten(1)                               # (C/G, m)
            gvec = xg.mean(1)                                                        # global feature g
            c = gvec @ xg                                                            # c_i = g . x_i
            mu, sigma = c.mean(), torch.sqrt(((c - c.mean()) ** 2).mean())
            a = m.weight.flatten()[g] * (c - mu) / (sigma + 1e-5) + m.bias.flatten()[g]
            ref[b, g * cg:(g + 1) * cg] = (xg * torch.sigmoid(a)).reshape(cg, 6, 5)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert torch.isfinite(vb.create_block("sge", 128).eval()(torch.randn(1, 128, 1, 1))).all()
