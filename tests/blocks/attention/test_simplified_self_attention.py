"""Tests of :mod:`visionblocks.blocks.attention.simplified_self_attention`."""
import pytest
import torch

import visionblocks as vb

from _reference import _block, _mha_reference


D = torch.float64
def test_simplified_self_attention_reference():
    m = _block("simplified_self_attention", 24, num_heads=3)
    x = torch.randn(2, 6, 24, dtype=D)
    eye = torch.eye(24, dtype=D)
    ref = _mha_reference(x, eye, eye, eye, 3) @ m.proj.weight.T + m.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert [n for n, _ in m.named_parameters()] == ["proj.weight", "proj.bias"]
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("simplified_self_attention", 20, num_heads=3)
