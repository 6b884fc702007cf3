"""Tests of :mod:`visionblocks.blocks.reparam.diverse_branch_block`."""
from __future__ import annotations

import pytest
import torch

from visionblocks.blocks.reparam import DiverseBranchBlock

from _reference import _random


def test_dbb_identity_based_1x1_starts_as_identity():
    m = DiverseBranchBlock(8, 8, 3, groups=2)
    conv1 = m.body["conv_1x1_kxk"].conv1
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(conv1(x), x)
    dw = DiverseBranchBlock(8, 8, 3, groups=8)
    assert dw.depthwise and "conv_1x1" not in dw.body and dw.body["conv_1x1_kxk"].conv1.out_channels == 16
def test_dbb_paper_branches():
    m = DiverseBranchBlock(16, 32, 3)
    assert list(m.body) == ["origin", "conv_1x1", "avg", "conv_1x1_kxk"]
def test_dbb_internal_channels_validation():
    with pytest.raises(ValueError, match=r"internal_channels \(10\) must be divisible by groups \(4\)"):
        DiverseBranchBlock(8, 8, 3, groups=4, internal_channels=10)
    m = _random(DiverseBranchBlock(8, 8, 3, groups=4, internal_channels=12).double())
    x = torch.randn(1, 8, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        y = m(x)
        m.reparameterize()
        torch.testing.assert_close(m(x), y, rtol=1e-10, atol=1e-10)
def test_training_mode_uses_batch_statistics_and_learns():
    """The training form trains like any conv-BN network: batch statistics, gradients reach every branch."""
    m = DiverseBranchBlock(4, 4, 3).train()
    y = m(torch.randn(4, 4, 6, 6) * 3 + 1)
    origin = m.body["origin"]
    assert origin.bn.num_batches_tracked.item() == 1
    y.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
