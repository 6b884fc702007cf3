"""Tests of :mod:`visionblocks.layers.windows` against ``F.unfold`` / ``F.fold``."""
import math

import pytest
import torch
import torch.nn.functional as F

from visionblocks.layers import crop_to, fold_windows, gather_windows, resize_bicubic, window_count

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


def test_window_count_is_ceil_for_every_size():
    for stride in (1, 2, 3, 7):
        for size in range(1, 40):
            assert window_count(size, stride) == math.ceil(size / stride)


class _Crop(torch.nn.Module):
    def forward(self, x):
        return crop_to(torch.cat([x, x], dim=-1).repeat(1, 1, 2, 1), x.shape[-2] - 1, x.shape[-1])


class _Resize(torch.nn.Module):
    def __init__(self, align_corners):
        super().__init__()
        self.grid, self.align_corners = torch.nn.Parameter(torch.randn(1, 3, 6, 5)), align_corners

    def forward(self, x):
        return x + resize_bicubic(self.grid, x.shape[-2:], self.align_corners)


@pytest.mark.parametrize("module", [_Crop(), _Resize(False), _Resize(True)], ids=["crop", "resize", "resize_ac"])
def test_crop_and_resize_export_with_dynamic_sizes_and_stay_right_at_the_grids_own_size(module):
    """crop_to (a view for concrete sizes, a copy for symbolic ones) and resize_bicubic (the grid itself at its
    own size, always interpolated when symbolic: the identity there) give one program, exported at 8x7, that is
    the eager function at other sizes, the grid's own 6x5 included."""
    from torch.export import Dim
    ep = torch.export.export(module, (torch.randn(2, 3, 8, 7),), dynamic_shapes=({0: Dim.AUTO, 2: Dim.AUTO,
                                                                                  3: Dim.AUTO},))
    for shape in ((1, 3, 6, 5), (3, 3, 9, 12), (2, 3, 5, 5)):
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(ep.module()(x), module(x), rtol=1e-6, atol=1e-6)
    grid = torch.randn(1, 3, 6, 5)
    assert resize_bicubic(grid, (6, 5)) is grid
    torch.testing.assert_close(resize_bicubic(grid, (9, 4), True),
                               torch.nn.functional.interpolate(grid, (9, 4), mode="bicubic", align_corners=True))
