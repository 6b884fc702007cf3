"""Tests of :mod:`visionblocks.blocks.attention.global_filter`."""
import pytest
import torch
import torch.nn.functional as F

from _reference import _block, _global_filter_reference


D = torch.float64
@pytest.mark.parametrize("size", [(6, 8), (5, 7)])
def test_global_filter_reference(size):
    H, W = size
    m = _block("global_filter", 3, h=H, w=W // 2 + 1)
    x = torch.randn(2, 3, H, W, dtype=D)
    K = torch.view_as_complex(m.complex_weight.detach().contiguous()).permute(2, 0, 1)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _global_filter_reference(x, K), rtol=1e-10, atol=1e-10)
def test_global_filter_resized_filter():
    m = _block("global_filter", 4, h=14, w=8)
    with torch.no_grad():  # a constant real filter a stays constant when resized: y = a x at any size
        m.complex_weight[..., 0] = 0.7
        m.complex_weight[..., 1] = 0.0
        for size in ((14, 14), (9, 32), (17, 23)):
            x = torch.randn(1, 4, *size, dtype=D)
            torch.testing.assert_close(m(x), 0.7 * x, rtol=1e-10, atol=1e-10)
    m = _block("global_filter", 4, h=14, w=8)
    x = torch.randn(1, 4, 20, 20, dtype=D)
    w = m.complex_weight.detach()                                   # (h, w, C, 2), GFNet's layout
    grid = w.reshape(1, 14, 8, 8).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, size=(20, 11), mode="bicubic", align_corners=True)
    resized = resized.permute(0, 2, 3, 1).reshape(20, 11, 4, 2)
    K = torch.view_as_complex(resized.contiguous()).permute(2, 0, 1)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _global_filter_reference(x, K), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dims,shape", [((2, 3), (2, 3, 9, 12)), ((1, 2), (2, 9, 12, 3)), ((2, 3), (1, 2, 8, 7))])
def test_the_exportable_inverse_transform_is_irfft2(dims, shape):
    """The inverse transform an export runs (inverse complex FFT over H, inverse real FFT over W on the transposed
    map) is irfft2 (float64, odd and even sizes, both layouts)."""
    from visionblocks.blocks.attention.global_filter import _irfft2_exportable
    x = torch.randn(*shape, dtype=torch.float64)
    spec = torch.fft.rfft2(x, dim=dims, norm="ortho") * (1 + 0.5j)
    H, W = shape[dims[0]], shape[dims[1]]
    torch.testing.assert_close(_irfft2_exportable(spec, W, dims),
                               torch.fft.irfft2(spec, s=(H, W), dim=dims, norm="ortho"), rtol=1e-12, atol=1e-12)
