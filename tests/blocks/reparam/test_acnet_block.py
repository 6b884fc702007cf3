"""Tests of :mod:`visionblocks.blocks.reparam.acnet_block`."""
from __future__ import annotations

import torch

from visionblocks.blocks.reparam import ACBlock

from _reference import _random


def test_acnet_folded_kernel_is_the_skeleton_sum():
    """ACNet Sec. 3.3: the 3x1 and 1x3 BN-fused kernels are added onto the square kernel's centre column/row."""
    torch.manual_seed(0)
    m = _random(ACBlock(4, 6, 3).double())

    def fused(unit):
        t = unit.bn.weight / torch.sqrt(unit.bn.running_var + unit.bn.eps)
        return unit.conv.weight * t[:, None, None, None], unit.bn.bias - unit.bn.running_mean * t

    (ws, bs), (wv, bv), (wh, bh) = (fused(m.body[n]) for n in ("square", "ver", "hor"))
    w = ws.clone()
    w[:, :, :, 1] += wv[:, :, :, 0]
    w[:, :, 1, :] += wh[:, :, 0, :]
    with torch.no_grad():
        m.reparameterize()
    torch.testing.assert_close(m.body.weight, w, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.body.bias, bs + bv + bh, rtol=1e-12, atol=1e-12)
