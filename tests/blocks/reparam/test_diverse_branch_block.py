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


def test_training_gradient_is_that_of_the_function_computed():
    """In training the border value of a padded BN (``beta - mean * gamma / sigma``) reads the running statistics,
    which this batch's BN call has just updated: that dependence on the batch is not differentiated (as BatchNorm's
    own statistics, and as the authors' code); with momentum 0 the statistics stay put, and the gradient then is
    the exact one, the border's dependence on gamma and beta included (the authors detach those)."""
    torch.manual_seed(0)
    m = DiverseBranchBlock(3, 3, 3).double().train()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = 0.0
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.normal_()
                mod.bias.normal_()
    params = [p for p in m.parameters()]
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *p: torch.func.functional_call(
        m, dict(zip([n for n, _ in m.named_parameters()], p)), (x,)), (x, *params), fast_mode=True)
