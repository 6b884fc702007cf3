"""Tests of :mod:`visionblocks.layers.activations`: in place where it costs nothing, the same values."""
import pytest
import torch
import torch.nn as nn

from visionblocks.layers import create_act

NO_GRAD_INPLACE = [("relu6", nn.ReLU6), ("silu", nn.SiLU), ("hard_swish", nn.Hardswish),
                   ("hard_sigmoid", nn.Hardsigmoid), ("mish", nn.Mish)]


@pytest.mark.parametrize("name,torch_cls", NO_GRAD_INPLACE)
def test_in_place_without_autograd_out_of_place_under_autograd_same_values_and_gradient(name, torch_cls):
    act = create_act(name, inplace=True)
    assert isinstance(act, torch_cls) and act.inplace
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64) * 4
    ref = torch_cls()(x)
    with torch.no_grad():                       # eval: the input is overwritten, no new tensor
        y = x.clone()
        out = act(y)
        assert out.data_ptr() == y.data_ptr()
        torch.testing.assert_close(out, ref)
    xg = x.clone().requires_grad_()             # autograd recording: out of place, the input kept
    out = act(xg)
    assert out.data_ptr() != xg.data_ptr()
    torch.testing.assert_close(xg.detach(), x)
    g = torch.randn_like(x)
    xr = x.clone().requires_grad_()
    torch.testing.assert_close(torch.autograd.grad(out, xg, g)[0], torch.autograd.grad(torch_cls()(xr), xr, g)[0])
    # a frozen layer's input (no grad required) under grad mode: in place too
    y = x.clone()
    assert act(y).data_ptr() == y.data_ptr()


@pytest.mark.parametrize("name,torch_cls", NO_GRAD_INPLACE + [("gelu", nn.GELU)])
def test_out_of_place_unless_asked(name, torch_cls):
    act = create_act(name)
    x = torch.randn(4, 3)
    with torch.no_grad():
        assert act(x).data_ptr() != x.data_ptr()
    assert create_act(torch_cls, inplace=True).__class__ is not torch_cls or name == "gelu"
