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

