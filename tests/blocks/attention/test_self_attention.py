"""Tests of :mod:`visionblocks.blocks.attention.self_attention`."""
import pytest
import torch

import visionblocks as vb

from _reference import _block, _mha_reference


D = torch.float64
def test_self_attention_sdpa_matches_explicit_softmax():
    m = _block("self_attention", 32, num_heads=4, qkv_bias=True, proj_bias=True)
    x = torch.randn(2, 7, 32, dtype=D)
    wq, wk, wv = m.qkv.weight.chunk(3, 0)
    bq, bk, bv = m.qkv.bias.chunk(3, 0)
    ref = _mha_reference(x, wq, wk, wv, 4, bq, bk, bv) @ m.proj.weight.T + m.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
def test_self_attention_paper_defaults_and_validation():
    m = vb.create_block("self_attention", 64)
    assert m.num_heads == 8 and m.qkv.bias is None and m.proj.bias is None
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("self_attention", 60, num_heads=8)
