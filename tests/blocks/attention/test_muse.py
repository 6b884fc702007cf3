"""Tests of :mod:`visionblocks.blocks.attention.muse`."""
import pytest
import torch

import visionblocks as vb

from _reference import _block, _mha_reference


D = torch.float64
def test_muse_reference():
    C, h, N = 12, 3, 9
    m = _block("muse", C, num_heads=h, kernel_sizes=(1, 3, 5))
    x = torch.randn(2, N, C, dtype=D)
    wq, wk, wv = m.qkv.weight.chunk(3, 0)
    bq, bk, bv = m.qkv.bias.chunk(3, 0)
    attn = _mha_reference(x, wq, wk, wv, h, bq, bk, bv) @ m.proj.weight.T + m.proj.bias
    v = x @ wv.T + bv                                             # the shared value projection
    alpha = torch.exp(m.alpha) / torch.exp(m.alpha).sum()
    conv = torch.zeros_like(x)
    for i, (ks, branch) in enumerate(zip((1, 3, 5), m.convs)):
        if ks == 1:
            dw = v
        else:
            dw = torch.zeros_like(v)
            for t in range(N):
                for j in range(ks):
                    u = t + j - ks // 2
                    if 0 <= u < N:
                        dw[:, t] += v[:, u] * branch.depthwise.weight[:, 0, j]
            dw = dw + branch.depthwise.bias
        conv += alpha[i] * (dw @ branch.pointwise.weight[:, :, 0].T + branch.pointwise.bias)
    with torch.no_grad():
        torch.testing.assert_close(m(x), attn + conv, rtol=1e-10, atol=1e-10)
def test_muse_parameters_created_in_init():
    m = vb.create_block("muse", 16, num_heads=4)
    assert [c.depthwise.kernel_size for c in m.convs] == [(3,), (15,)]
    before = {n: p for n, p in m.named_parameters()}
    m(torch.randn(2, 5, 16)).sum().backward()
    after = {n: p for n, p in m.named_parameters()}
    assert before.keys() == after.keys() and all(before[n] is after[n] for n in before)
    assert "alpha" in m.state_dict() and m.alpha.grad is not None
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("muse", 18, num_heads=4)
