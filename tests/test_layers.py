"""Shared layers against closed forms."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (DropPath, LayerNorm2d, check_odd, fuse_conv_bn, get_act_layer, get_norm_layer,
                                 identity_kernel, make_divisible, local_aggregate, pad_kernel, spatial_mean)
from visionblocks.testing import randomize_bn_stats


def test_make_divisible():
    assert make_divisible(32 * 0.75, 8) == 24
    assert make_divisible(10, 8) == 16  # 8 would lose more than 10%
    assert make_divisible(3, 8) == 8


def test_check_odd_returns_odd_values_and_names_the_even_ones():
    for v in (1, 3, 7, -1):
        assert check_odd("kernel_size", v) == v
    with pytest.raises(ValueError, match=r"^kernel_size must be odd, got 4$"):
        check_odd("kernel_size", 4)
    with pytest.raises(ValueError, match=r"^kernel_size must be odd \(same padding\), got 0$"):
        check_odd("kernel_size", 0, "same padding")


def test_fuse_conv_bn_is_exact_in_float64():
    conv = nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2, bias=True).double()
    bn = randomize_bn_stats(nn.BatchNorm2d(8)).double().eval()
    x = torch.randn(2, 6, 11, 9, dtype=torch.float64)
    torch.testing.assert_close(fuse_conv_bn(conv, bn)(x), bn(conv(x)), rtol=1e-12, atol=1e-12)


def test_pad_and_identity_kernels():
    w = torch.randn(4, 2, 1, 1, dtype=torch.float64)
    x = torch.randn(1, 4, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(F.conv2d(x, pad_kernel(w, (3, 3)), padding=1, groups=2), F.conv2d(x, w, groups=2))
    for groups in (1, 2, 4):
        k = identity_kernel(4, groups, (3, 3), dtype=torch.float64)
        torch.testing.assert_close(F.conv2d(x, k, padding=1, groups=groups), x)
    with pytest.raises(ValueError, match="cannot centre"):
        pad_kernel(torch.randn(1, 1, 2, 2), (3, 3))


def test_layernorm2d_equals_layernorm_over_channels():
    ln = LayerNorm2d(5)
    nn.init.normal_(ln.weight)
    x = torch.randn(2, 5, 3, 4)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (5,), ln.weight, ln.bias).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref)


def test_lookup_by_name_or_class():
    assert get_act_layer("gelu") is nn.GELU and get_act_layer(nn.ReLU) is nn.ReLU and get_act_layer(None) is nn.Identity
    assert get_norm_layer("layernorm2d") is LayerNorm2d
    with pytest.raises(ValueError, match="unknown activation 'gelo'"):
        get_act_layer("gelo")


def test_drop_path_keeps_expectation_and_is_identity_in_eval():
    dp = DropPath(0.5)
    x = torch.ones(20000, 1)
    y = dp(x)
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert abs(y.mean().item() - 1.0) < 0.05
    assert torch.equal(dp.eval()(x), x)
    with pytest.raises(ValueError):
        DropPath(1.0)


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


@pytest.mark.parametrize("k,stride,size", [(3, 1, (5, 7)), (5, 2, (9, 6)), (7, 1, (4, 3)), (3, 3, (7, 8))])
def test_local_aggregate_equals_unfold_weighted_sum(k, stride, size):
    b, g, cg = 2, 3, 4
    x = torch.randn(b, g, cg, *size, dtype=torch.float64)
    ho, wo = -(-size[0] // stride), -(-size[1] // stride)
    w = torch.randn(b, g, 1, k * k, ho, wo, dtype=torch.float64)
    patches = F.unfold(x.view(b, g * cg, *size), k, padding=k // 2, stride=stride).view(b, g, cg, k * k, ho, wo)
    torch.testing.assert_close(local_aggregate(x, w, k, stride), (patches * w).sum(3))
