"""Tests of :mod:`visionblocks.layers.drop`."""
import pytest
import torch

from visionblocks.layers import DropPath


def test_drop_path_keeps_expectation_and_is_identity_in_eval():
    dp = DropPath(0.5)
    x = torch.ones(20000, 1)
    y = dp(x)
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert abs(y.mean().item() - 1.0) < 0.05
    assert torch.equal(dp.eval()(x), x)
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_add_residual_in_place_only_without_autograd():
    from visionblocks.layers import add_residual
    branch, shortcut = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    expected = branch + shortcut
    with torch.no_grad():
        b = branch.clone()
        out = add_residual(b, shortcut)
        assert out.data_ptr() == b.data_ptr() and torch.equal(out, expected)
    b = branch.clone().requires_grad_()
    out = add_residual(b, shortcut)
    assert out.data_ptr() != b.data_ptr() and torch.equal(out, expected)
    with torch.no_grad():      # a broadcast shortcut cannot be accumulated in place into a smaller branch
        small = torch.randn(2, 3, 1, 1)
        assert torch.equal(add_residual(small.clone(), shortcut), small + shortcut)
