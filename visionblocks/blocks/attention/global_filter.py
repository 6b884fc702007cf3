"""Global filter layer of GFNet (Rao et al., Global Filter Networks for Image Classification, NeurIPS 2021,
arXiv 2107.00645, https://arxiv.org/abs/2107.00645).

``X = F[x]`` (2-D real FFT over H, W, orthonormal), ``X~ = K * X`` (element-wise product with a learnable
complex filter K, one per channel), ``y = F^-1[X~]``: a depthwise global circular convolution in O(N log N).
K has the shape of the half spectrum, (h, w) = (H, W // 2 + 1) of the size it is built for (GFNet at 224 with
16x16 patches: 14 x 8).  At another input size the filter is resized to that input's spectrum, (H, W // 2 + 1),
by bicubic interpolation with ``align_corners=True`` of its real and imaginary parts, as GFNet does when it
fine-tunes at a new resolution (raoyongming/GFNet, main_gfnet.py).  The FFT runs in float32 for half/bfloat16
inputs (torch has no CPU half FFT; GFNet also casts to float32) and the result is cast back.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import check_nchw, check_positive_int, layout_like, resize_bicubic
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["GlobalFilter"]


def _irfft2_exportable(spec: torch.Tensor, W: int, dims: tuple[int, int]) -> torch.Tensor:
    """``irfft2(spec, s=(H, W), dim=dims, norm="ortho")`` as an inverse complex FFT over H, then the inverse real
    FFT over W with the W axis moved before the H axis: the form whose ONNX translation onnxruntime (1.32) runs
    when the sizes are dynamic (``irfft2``'s, or an ``irfft`` over the later axis, declares a wrong output shape
    for its DFT node and fails)."""
    h_dim, w_dim = dims
    t = torch.fft.ifft(spec, dim=h_dim, norm="ortho").transpose(h_dim, w_dim)
    return torch.fft.irfft(t, n=W, dim=h_dim, norm="ortho").transpose(h_dim, w_dim)


@register_block("global_filter", family="attention", layout="nchw",
                paper="Rao et al., Global Filter Networks for Image Classification, NeurIPS 2021",
                url="https://arxiv.org/abs/2107.00645",
                example=Example(args=(64,), kwargs={"h": 14, "w": 8}, input_shape=(2, 64, 14, 14)))
@validated()
class GlobalFilter(nn.Module):
    """Learnable global filter in the 2-D frequency domain, (B, C, H, W) -> (B, C, H, W).

    Args:
        channels: C.
        h, w: size of the stored half-spectrum filter, (H, W // 2 + 1) of the reference input
            (GFNet-224, patch 16: 14, 8); other sizes use the filter resized to their spectrum.
    """

    def __init__(self, channels: int, h: int = 14, w: int = 8):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.h = check_positive_int("h", h)
        self.w = check_positive_int("w", w)
        self.complex_weight = nn.Parameter(torch.randn(h, w, channels, 2) * 0.02)

    def filter_for(self, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
        """The filter as real/imaginary pairs in GFNet's layout (h, w, C, 2) for a half spectrum of size (h, w)."""
        weight = self.complex_weight.to(dtype)
        if isinstance(h, int) and isinstance(w, int) and (h, w) == (self.h, self.w):
            return weight
        grid = weight.permute(2, 3, 0, 1).reshape(1, 2 * self.channels, self.h, self.w)
        grid = resize_bicubic(grid, (h, w), align_corners=True)
        return grid.reshape(self.channels, 2, h, w).permute(2, 3, 0, 1)

    def _filter(self, x: torch.Tensor, dims: tuple[int, int], channels_last: bool) -> torch.Tensor:
        H, W = x.shape[dims[0]], x.shape[dims[1]]
        if x.numel() == 0:  # an empty batch (the FFT backends refuse empty transforms)
            return x.clone()
        xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
        spec = torch.fft.rfft2(xf, dim=dims, norm="ortho")
        weight = self.filter_for(H, W // 2 + 1, xf.dtype)
        weight = weight if channels_last else weight.permute(2, 0, 1, 3)
        spec = spec * torch.view_as_complex(weight.contiguous())
        if torch.compiler.is_exporting() and not isinstance(W, int):
            return _irfft2_exportable(spec, W, dims).to(x.dtype)
        return torch.fft.irfft2(spec, s=(H, W), dim=dims, norm="ortho").to(x.dtype)

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """The filter on a channels-last token grid (B, H, W, C) -> (B, H, W, C) (as GFNet's blocks use it)."""
        return self._filter(x, (1, 2), channels_last=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        # the transforms return the (B, C, H, W) order whatever x's layout (on channels-last input the FFT of the
        # (B, H, W, C) view, as forward_nhwc, is no faster): the output is put back in x's layout
        return layout_like(self._filter(x, (2, 3), channels_last=False), x)
