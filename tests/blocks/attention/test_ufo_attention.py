"""Tests of :mod:`visionblocks.blocks.attention.ufo_attention`."""
import pytest
import torch

import visionblocks as vb

from _reference import _block


D = torch.float64
def test_ufo_cross_normalization_reference():
    m = _block("ufo_attention", 16, num_heads=2)
    x = torch.randn(2, 11, 16, dtype=D)
    q, k, v = (x @ m.qkv.weight.T + m.qkv.bias).chunk(3, -1)
    B, N, C, h, d = 2, 11, 16, 2, 8
    out = torch.zeros(B, N, C, dtype=D)
    for b in range(B):
        for i in range(h):
            sl = slice(i * d, (i + 1) * d)
            kv = torch.zeros(d, d, dtype=D)
            for t in range(N):  # K^T V as a sum of outer products
                kv += torch.outer(k[b, t, sl], v[b, t, sl])
            kv_n = torch.stack([m.gamma_kv[i, 0, 0] * r / torch.sqrt((r * r).sum()) for r in kv])
            for t in range(N):
                qn = m.gamma_q[i, 0, 0] * q[b, t, sl] / torch.sqrt((q[b, t, sl] ** 2).sum())
                out[b, t, sl] = qn @ kv_n
    ref = out @ m.proj.weight.T + m.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("ufo_attention", 18, num_heads=4)
