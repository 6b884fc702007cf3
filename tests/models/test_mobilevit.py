"""Tests of :mod:`visionblocks.models.mobilevit`."""
import pytest
import torch

import visionblocks as vb

from _reference import _float64


@pytest.mark.usefixtures("_float64")
@pytest.mark.parametrize("name", ["mobilevit_attention", "mobilevitv2_attention"])
@pytest.mark.parametrize("size", [(1, 1), (1, 5), (3, 1)])
def test_mobilevit_blocks_smaller_than_a_patch(name, size):
    """Maps thinner than a patch leave whole sequences of padding: outputs and gradients stay finite."""
    m = vb.create_block(name, 8, transformer_dim=8, num_layers=1).train()
    x = torch.randn(2, 8, *size, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
