"""Tests of :mod:`visionblocks.layers.pool`."""
import pytest
import torch

from visionblocks.layers import spatial_mean


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (2, 4, 3, 1, 6)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_spatial_mean_equals_mean_over_the_last_two_dims_with_the_same_gradient(shape, keepdim):
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    ref = x.detach().clone().requires_grad_()
    out, expected = spatial_mean(x, keepdim=keepdim), ref.mean((-2, -1), keepdim=keepdim)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)
    g = torch.randn_like(expected)
    out.backward(g)
    expected.backward(g)
    torch.testing.assert_close(x.grad, ref.grad)
def test_spatial_mean_float16_does_not_overflow():
    x = torch.full((1, 1, 64, 64), 1000.0, dtype=torch.float16)   # the float16 sum, 4.1e6, would be inf
    assert spatial_mean(x).item() == 1000.0
