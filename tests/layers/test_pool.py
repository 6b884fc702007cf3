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


@pytest.mark.parametrize("shape,stride", [((2, 3, 8, 6), 2), ((2, 3, 9, 6), 3), ((1, 2, 7, 5), 2), ((2, 3, 4, 4), 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_avg_pool_ceil_is_the_mean_of_each_window_with_partial_border_windows(shape, stride, channels_last):
    from visionblocks.layers import avg_pool_ceil
    x = torch.randn(*shape, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = avg_pool_ceil(x, stride)
    B, C, H, W = shape
    oh, ow = -(-H // stride), -(-W // stride)
    ref = torch.stack([torch.stack([x[:, :, i * stride:(i + 1) * stride, j * stride:(j + 1) * stride].mean((-2, -1))
                                    for j in range(ow)], -1) for i in range(oh)], -2)       # the naive window loop
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0])


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (2, 3, 28, 1), (1, 4, 1, 6), (2, 3, 5, 29), (2, 2, 3, 15)])
@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -2])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_over_is_amax_without_and_with_autograd(shape, dim, keepdim):
    from visionblocks.layers import max_over
    x = torch.randn(*shape, dtype=torch.float64)            # continuous data: no ties
    expected = x.amax(dim, keepdim=keepdim)
    with torch.no_grad():
        out = max_over(x, dim, keepdim=keepdim)
    assert out.shape == expected.shape
    assert torch.equal(out, expected)
    xg, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = max_over(xg, dim, keepdim=keepdim), ref.amax(dim, keepdim=keepdim)
    assert torch.equal(out, expected)
    g = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(out, xg, g)[0], torch.autograd.grad(expected, ref, g)[0])


def test_max_over_3d_and_integer_tensors():
    from visionblocks.layers import max_over
    x = torch.randint(-50, 50, (3, 4, 5))
    for d in range(3):
        assert torch.equal(max_over(x, d), x.amax(d))


@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_mean_over_is_mean_without_and_with_autograd(dim, dtype):
    from visionblocks.layers import mean_over
    x = torch.randn(2, 5, 7, 9, dtype=dtype)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype is torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    with torch.no_grad():
        torch.testing.assert_close(mean_over(x, dim), x.mean(dim), **tol)
        # a non-contiguous input takes the sum form, with the same values
        torch.testing.assert_close(mean_over(x.transpose(2, 3), dim), x.transpose(2, 3).mean(dim), **tol)
    xg, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = mean_over(xg, dim), ref.mean(dim)
    torch.testing.assert_close(out, expected, **tol)
    g = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(out, xg, g)[0], torch.autograd.grad(expected, ref, g)[0], **tol)


def test_mean_over_float16_and_integers():
    from visionblocks.layers import mean_over
    x = torch.full((1, 1, 64, 64), 1000.0, dtype=torch.float16)
    assert mean_over(x, 3).eq(1000.0).all()             # no float16 overflow of the sum
    with pytest.raises(RuntimeError):                   # as torch: the mean of integers is not defined
        mean_over(torch.ones(2, 2, 3, 3, dtype=torch.int64), 3)


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (2, 6, 1, 4), (1, 3, 28, 28)])
@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -2])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_and_mean_over_a_channels_last_map(shape, dim, keepdim):
    """A channels-last map is reduced on its (B, H, W, C) view: the same values (max: exactly), the same shape,
    and the same gradients."""
    from visionblocks.layers import is_channels_last, max_over, mean_over
    x = torch.randn(*shape, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    assert is_channels_last(x)
    with torch.no_grad():
        out = max_over(x, dim, keepdim=keepdim)
        assert out.shape == x.amax(dim, keepdim=keepdim).shape
        assert torch.equal(out, x.contiguous().amax(dim, keepdim=keepdim))
        torch.testing.assert_close(mean_over(x, dim), x.contiguous().mean(dim), rtol=1e-12, atol=1e-12)
    xg, ref = x.clone().requires_grad_(), x.contiguous().requires_grad_()
    out, expected = mean_over(xg, dim), ref.mean(dim)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(out, xg, g)[0], torch.autograd.grad(expected, ref, g)[0])
    # max under autograd: the values, and the gradient of the arg-max (scattered), laid out channels-last as x
    xg = x.clone().requires_grad_()
    out, expected = max_over(xg, dim, keepdim=keepdim), ref.max(dim, keepdim=keepdim).values
    assert torch.equal(out, expected)
    g = torch.randn_like(expected)
    got, want = torch.autograd.grad(out, xg, g)[0], torch.autograd.grad(expected, ref, g)[0]
    assert torch.equal(got, want)
    assert is_channels_last(got) or not is_channels_last(x), got.stride()


def test_is_channels_last():
    from visionblocks.layers import is_channels_last
    cl = torch.channels_last
    assert is_channels_last(torch.randn(2, 3, 4, 5).contiguous(memory_format=cl))
    assert not is_channels_last(torch.randn(2, 3, 4, 5))
    assert not is_channels_last(torch.randn(2, 1, 4, 5).contiguous(memory_format=cl))   # C == 1: both layouts
    assert not is_channels_last(torch.randn(2, 3, 1, 1).contiguous(memory_format=cl))   # 1x1: both layouts
    assert not is_channels_last(torch.randn(2, 3, 4, 10).contiguous(memory_format=cl)[..., ::2])  # not dense
    assert not is_channels_last(torch.randn(3, 4, 5))
