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


def test_sgu_eps_option_sets_only_the_gating_norm():
    """``sgu_eps`` (timm's gMLP: 1e-5) changes the spatial gating unit's LayerNorm only; the default keeps 1e-6."""
    with torch.device("meta"):
        default, timm_like = vb.create_model("gmlp_ti16"), vb.create_model("gmlp_ti16", sgu_eps=1e-5)
    for m, sgu in ((default, 1e-6), (timm_like, 1e-5)):
        assert {b.sgu.norm.eps for b in m.blocks} == {sgu} and {b.norm.eps for b in m.blocks} == {1e-6}
    torch.manual_seed(0)
    blk = vb.create_block("gmlp_block", 8, 4, sgu_eps=0.5).double().eval()
    x = torch.randn(2, 4, 8, dtype=D)
    z = _gelu(_ln(x, blk.norm.weight, blk.norm.bias, 1e-6) @ blk.proj_in.weight.T + blk.proj_in.bias)
    u, v = z.chunk(2, dim=-1)
    gate = blk.sgu.proj.weight @ _ln(v, blk.sgu.norm.weight, blk.sgu.norm.bias, 0.5) + blk.sgu.proj.bias[:, None]
    torch.testing.assert_close(blk(x), x + (u * gate) @ blk.proj_out.weight.T + blk.proj_out.bias, rtol=1e-12, atol=1e-12)
