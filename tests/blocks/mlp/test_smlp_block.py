"""Tests of :mod:`visionblocks.blocks.mlp.smlp_block`."""
import pytest
import torch

import visionblocks as vb
from visionblocks.testing import randomize_bn_stats

from _reference import _gelu, _perturb


D = torch.float64
def test_smlp_block_matches_axial_loops():
    m = _perturb(vb.create_block("smlp_block", 6, (5, 7)).double().eval())
    randomize_bn_stats(m)
    x = torch.randn(2, 6, 5, 7, dtype=D)
    bn = m.norm
    a = (x - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    a = _gelu(a * bn.weight[:, None, None] + bn.bias[:, None, None])
    xh, xw = torch.empty_like(a), torch.empty_like(a)
    for i in range(5):   # row i of the output mixes column entries of all rows j (weights shared)
        xh[:, :, i, :] = sum(m.proj_h.weight[i, j] * a[:, :, j, :] for j in range(5)) + m.proj_h.bias[i]
    for i in range(7):
        xw[:, :, :, i] = sum(m.proj_w.weight[i, j] * a[:, :, :, j] for j in range(7)) + m.proj_w.bias[i]
    cat = torch.cat([a, xh, xw], 1)
    y = torch.einsum("oc,bchw->bohw", m.fuse.weight[:, :, 0, 0], cat)
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)
    assert m.fuse.bias is None
def test_smlp_rejects_other_size():
    m = vb.create_block("smlp_block", 4, (6, 6))
    with pytest.raises(ValueError, match="size"):
        m(torch.randn(1, 4, 6, 7))
