"""Tests of :mod:`visionblocks.blocks.mlp.gmlp_block`."""
import torch

import visionblocks as vb

from _reference import _gelu, _ln, _perturb


D = torch.float64
def test_gmlp_block_matches_equations():
    m = _perturb(vb.create_block("gmlp_block", 8, 5, ffn_ratio=2).double().eval())
    x = torch.randn(2, 5, 8, dtype=D)
    z = _gelu(_ln(x, m.norm.weight, m.norm.bias, 1e-6) @ m.proj_in.weight.T + m.proj_in.bias)
    z1, z2 = z[..., :8], z[..., 8:]
    v = _ln(z2, m.sgu.norm.weight, m.sgu.norm.bias, 1e-6)
    gate = torch.einsum("nm,bmc->bnc", m.sgu.proj.weight, v) + m.sgu.proj.bias[None, :, None]
    y = x + (z1 * gate) @ m.proj_out.weight.T + m.proj_out.bias
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)
