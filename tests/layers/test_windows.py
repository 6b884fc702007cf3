"""Tests of :mod:`visionblocks.layers.windows` against ``F.unfold`` / ``F.fold``."""
import pytest
import torch
import torch.nn.functional as F

from visionblocks.layers import fold_windows, gather_windows, window_count

CASES = [((7, 6), 3, 2), ((5, 4), 3, 1), ((8, 8), 3, 2), ((10, 9), 5, 3), ((1, 3), 5, 2), ((2, 2), 7, 1)]


def _unfolded(x_nchw, k, s, G):
    B, C, H, W = x_nchw.shape
    u = F.unfold(x_nchw, k, padding=k // 2, stride=s)                        # (B, C*k*k, L)
    lh, lw = window_count(H, s), window_count(W, s)
    return u.view(B, G, C // G, k * k, lh, lw).permute(0, 4, 5, 1, 3, 2)    # (B, lh, lw, G, k*k, D)


@pytest.mark.parametrize("size,k,s", CASES)
def test_gather_windows_is_unfold_and_fold_windows_is_fold(size, k, s):
    B, G, D = 2, 3, 4
    x = torch.randn(B, G * D, *size, dtype=torch.float64)
    tokens = x.permute(0, 2, 3, 1).reshape(B, *size, G, D)
    torch.testing.assert_close(gather_windows(tokens, k, s), _unfolded(x, k, s, G))
    y = torch.randn(B, window_count(size[0], s), window_count(size[1], s), G, k * k, D, dtype=torch.float64)
    ref = F.fold(y.permute(0, 3, 5, 4, 1, 2).reshape(B, G * D * k * k, -1), size, k, padding=k // 2, stride=s)
    torch.testing.assert_close(fold_windows(y, size, k, s), ref.permute(0, 2, 3, 1).reshape(B, *size, G, D))


@pytest.mark.parametrize("size,k,s", CASES[:4])
def test_gather_and_fold_are_adjoint_and_twice_differentiable(size, k, s):
    x = torch.randn(1, *size, 2, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(1, window_count(size[0], s), window_count(size[1], s), 2, k * k, 3, dtype=torch.float64,
                    requires_grad=True)
    # <gather(x), y> == <x, fold(y)>
    torch.testing.assert_close((gather_windows(x, k, s) * y).sum(), (x * fold_windows(y, size, k, s)).sum())
    assert torch.autograd.gradcheck(lambda t: gather_windows(t, k, s), (x,))
    assert torch.autograd.gradgradcheck(lambda t: gather_windows(t, k, s), (x,))
    assert torch.autograd.gradcheck(lambda t: fold_windows(t, size, k, s), (y,))
