"""Tests of :mod:`visionblocks.models.gmlp`."""
import pytest
import torch

import visionblocks as vb

from _reference import _gelu, _ln


D = torch.float64
def test_gmlp_gating_is_identity_on_gated_half_at_init():
    torch.manual_seed(0)
    m = vb.create_block("gmlp_block", 16, 9).double().eval()
    assert torch.all(m.sgu.proj.bias == 1) and m.sgu.proj.weight.abs().max() < 1e-4
    x = torch.randn(2, 9, 16, dtype=D)
    z = _gelu(_ln(x, m.norm.weight, m.norm.bias, 1e-6) @ m.proj_in.weight.T + m.proj_in.bias)
    u = z[..., : z.shape[-1] // 2]
    ffn = x + u @ m.proj_out.weight.T + m.proj_out.bias   # s(Z) = Z1 exactly when W = 0, b = 1
    torch.testing.assert_close(m(x), ffn, rtol=1e-4, atol=1e-4)   # near-zero W: near-identity
    with torch.no_grad():
        m.sgu.proj.weight.zero_()
    torch.testing.assert_close(m(x), ffn, rtol=1e-12, atol=1e-12)
def test_gmlp_rejects_odd_ffn():
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("gmlp_block", 5, 4, ffn_ratio=1)
