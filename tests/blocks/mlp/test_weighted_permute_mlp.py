"""Tests of :mod:`visionblocks.blocks.mlp.weighted_permute_mlp`."""
import pytest
import torch

import visionblocks as vb

from _reference import _gelu, _perturb


D = torch.float64
def _vip_reference(m, x):
    """The three permute branches by explicit reshapes, one channel segment at a time (paper Sec. 3.2)."""
    x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
    B, H, W, C = x.shape
    xh, xw = torch.empty_like(x), torch.empty_like(x)
    n = C // H
    for g in range(H):   # segment g: its (H x n) column block is mixed by the C -> C layer
        seg = x[..., g * n:(g + 1) * n].permute(0, 2, 1, 3).reshape(B, W, H * n)
        out = seg @ m.mlp_h.weight.T
        xh[..., g * n:(g + 1) * n] = out.reshape(B, W, H, n).permute(0, 2, 1, 3)
    n = C // W
    for g in range(W):
        seg = x[..., g * n:(g + 1) * n].reshape(B, H, W * n)
        xw[..., g * n:(g + 1) * n] = (seg @ m.mlp_w.weight.T).reshape(B, H, W, n)
    xc = x @ m.mlp_c.weight.T
    a = (xh + xw + xc).mean((1, 2))
    r1, r2 = m.reweight.fc1, m.reweight.fc2
    a = (_gelu(a @ r1.weight.T + r1.bias) @ r2.weight.T + r2.bias).reshape(B, C, 3)
    a = torch.exp(a) / torch.exp(a).sum(-1, keepdim=True)
    y = xh * a[:, None, None, :, 0] + xw * a[:, None, None, :, 1] + xc * a[:, None, None, :, 2]
    return (y @ m.proj.weight.T + m.proj.bias).permute(0, 3, 1, 2)
@pytest.mark.parametrize("size", [(4, 4), (3, 6)])
def test_vip_matches_explicit_permutations(size):
    m = _perturb(vb.create_block("vip", 12, size).double().eval())
    x = torch.randn(2, 12, *size, dtype=D)
    torch.testing.assert_close(m(x), _vip_reference(m, x), rtol=1e-12, atol=1e-12)
def test_vip_validates_segments():
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("vip", 20, (8, 8))
