"""Tests of :mod:`visionblocks.blocks.attention.external_attention`."""
import torch

import visionblocks as vb

from _reference import _block


D = torch.float64
def test_external_attention_double_normalization():
    m = _block("external_attention", 16, memory_units=5)
    x = torch.randn(2, 9, 16, dtype=D)
    f = x @ m.query.weight.T + m.query.bias
    B, N, S = 2, 9, 5
    a = torch.zeros(B, N, S, dtype=D)
    for b in range(B):
        for i in range(N):
            for j in range(S):
                a[b, i, j] = (f[b, i] * m.mk.weight[j]).sum()
    alpha = torch.zeros_like(a)
    for b in range(B):
        for j in range(S):  # softmax over the tokens (column-wise)
            e = torch.exp(a[b, :, j])
            alpha[b, :, j] = e / e.sum()
        for i in range(N):  # l1 over the memory units (row-wise)
            alpha[b, i] = alpha[b, i] / (alpha[b, i].sum() + 1e-9)
    ref = alpha @ m.mv.weight.T
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert vb.create_block("external_attention", 32).memory_units == 64  # paper: S = 64
