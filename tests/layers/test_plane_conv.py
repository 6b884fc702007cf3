"""Tests of :mod:`visionblocks.layers.plane_conv`: every form equals ``F.conv2d`` (the independent reference) in
value and in its gradients with respect to the input, the weight and the bias."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import PlaneConv2d


def _check(conv, x):
    x = x.detach().requires_grad_()
    ref_w = conv.weight.detach().clone().requires_grad_()
    ref_b = None if conv.bias is None else conv.bias.detach().clone().requires_grad_()
    xr = x.detach().clone().requires_grad_()
    out = conv(x)
    ref = F.conv2d(xr, ref_w, ref_b, padding=conv.kernel_size[0] // 2)
    assert out.shape == ref.shape and out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(conv.weight.grad, ref_w.grad, rtol=1e-12, atol=1e-12)
    if ref_b is not None:
        torch.testing.assert_close(conv.bias.grad, ref_b.grad, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), ref.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cin,cout,k,bias", [(2, 1, 7, False), (2, 1, 3, False), (3, 2, 5, True), (1, 1, 1, True)])
@pytest.mark.parametrize("shape", [(64, 7), (7, 64), (33, 5), (4, 41), (96, 8)])
def test_banded_form_equals_conv2d(cin, cout, k, bias, shape):
    torch.manual_seed(0)
    conv = PlaneConv2d(cin, cout, k, bias=bias).double()
    assert conv.use_banded(*shape), "the shape must exercise the banded form"
    _check(conv, torch.randn(2, cin, *shape, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(12, 12), (20, 9), (9, 20), (300, 70)])
def test_direct_form_for_square_or_wide_planes_equals_conv2d(shape):
    torch.manual_seed(1)
    conv = PlaneConv2d(2, 1, 7).double()
    assert not conv.use_banded(*shape), "the shape must exercise the direct form"
    _check(conv, torch.randn(3, 2, *shape, dtype=torch.float64))


@pytest.mark.parametrize("layout", ["transposed", "channels_last"])
@pytest.mark.parametrize("shape", [(48, 6), (6, 48), (10, 10)])
def test_any_input_layout(layout, shape):
    conv = PlaneConv2d(2, 1, 3).double()
    x = torch.randn(2, 2, *shape, dtype=torch.float64)
    x = (x.transpose(2, 3).contiguous().transpose(2, 3) if layout == "transposed"
         else x.contiguous(memory_format=torch.channels_last))
    _check(conv, x)


def test_is_a_conv2d_with_the_same_state_dict():
    conv = PlaneConv2d(2, 1, 7)
    plain = nn.Conv2d(2, 1, 7, padding=3, bias=False)
    assert isinstance(conv, nn.Conv2d) and conv.padding == (3, 3) and conv.stride == (1, 1)
    assert conv.state_dict().keys() == plain.state_dict().keys()
    assert conv.weight.shape == plain.weight.shape
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(1, 2, 64, 8)
    torch.testing.assert_close(conv(x), plain(x), rtol=1e-5, atol=1e-6)


def test_bfloat16_close_to_float32():
    conv = PlaneConv2d(2, 1, 7)
    x = torch.randn(2, 2, 64, 8)
    torch.testing.assert_close(conv.bfloat16()(x.bfloat16()).float(), conv.float()(x), rtol=0.05, atol=0.05)


@pytest.mark.parametrize("bad", [{"kernel_size": 4}, {"kernel_size": 0}, {"in_channels": 0}])
def test_rejects_bad_arguments(bad):
    kwargs = {"in_channels": 2, "out_channels": 1, "kernel_size": 7, **bad}
    with pytest.raises(ValueError):
        PlaneConv2d(**kwargs)


def test_flop_counter_counts_the_convolution_not_the_band():
    """FLOPs are the network's arithmetic: 2 * k^2 * Cin * Cout per output element, whichever form runs."""
    from torch.utils.flop_counter import FlopCounterMode
    conv = PlaneConv2d(2, 1, 7)
    x = torch.randn(3, 2, 64, 8)
    assert conv.use_banded(64, 8)
    with FlopCounterMode(display=False) as fc:
        y = conv(x)
    assert fc.get_total_flops() == 2 * 49 * 2 * 1 * y.numel()
    torch.testing.assert_close(y, F.conv2d(x, conv.weight, padding=3), rtol=1e-5, atol=1e-6)
