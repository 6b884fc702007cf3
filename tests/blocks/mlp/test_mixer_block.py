"""Tests of :mod:`visionblocks.blocks.mlp.mixer_block`."""
import torch

import visionblocks as vb

from _reference import _gelu, _ln, _perturb


D = torch.float64
def test_mixer_block_matches_transpose_matmul_reference():
    m = _perturb(vb.create_block("mixer_block", 24, 10).double().eval())
    x = torch.randn(3, 10, 24, dtype=D)
    t = m.token_mlp
    # token mixing, written as in the paper: transpose, MLP over the token axis, transpose back
    u = _ln(x, m.norm1.weight, m.norm1.bias, 1e-6).transpose(1, 2)          # (B, C, N)
    u = _gelu(u @ t.fc1.weight.T + t.fc1.bias) @ t.fc2.weight.T + t.fc2.bias
    u = x + u.transpose(1, 2)
    c = m.channel_mlp
    y = u + _gelu(_ln(u, m.norm2.weight, m.norm2.bias, 1e-6) @ c.fc1.weight.T + c.fc1.bias) @ c.fc2.weight.T + c.fc2.bias
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)
    assert t.fc1.out_features == 12 and c.fc1.out_features == 96  # D_S = C/2, D_C = 4C
