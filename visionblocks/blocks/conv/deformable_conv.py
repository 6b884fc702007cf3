"""Deformable convolution v1 (Dai et al., Deformable Convolutional Networks, ICCV 2017, arXiv 1703.06211),
in pure PyTorch with the semantics of ``torchvision.ops.deform_conv2d``.

``y(p0) = sum_k w_k x(p0 + p_k + dp_k)``: every kernel tap k of output position p0 samples the input at its
regular grid position ``p_k`` plus a learned fractional offset ``dp_k`` (bilinear interpolation), the
offsets being predicted from the input by a side convolution (same kernel, stride, padding and dilation)
whose weights and bias are zero-initialised, so training starts from the plain convolution.  Sampling
matches torchvision exactly: ``y = oy * s - p + i * d + dy``; a corner outside the image contributes 0
(so a point at or beyond -1 / H is 0).  The offset tensor is (B, 2 * offset_groups * kh * kw, Ho, Wo),
ordered per offset group, per tap (row-major), as (dy, dx); channel c uses offset group
``c // (C / offset_groups)``.  :func:`deform_conv2d` gathers the four corners with vectorised indexing
(no loops over positions; any H, W >= 1) and contracts with the kernel in one batched matmul.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from visionblocks.layers import check_divisible, check_nchw, check_positive_int, to_2tuple
from visionblocks.registry import Example, register_block

from visionblocks.layers import conv_geometry


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride=1, padding=0, dilation=1, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Deformable convolution, ``torchvision.ops.deform_conv2d`` semantics, pure PyTorch.

    Args:
        x: (B, C, H, W).  offset: (B, 2 * og * kh * kw, Ho, Wo).  weight: (O, C / groups, kh, kw).
        bias: (O,) or None.  mask: (B, og * kh * kw, Ho, Wo) modulation (DCN v2) or None.
    """
    b, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = to_2tuple(stride), to_2tuple(padding), to_2tuple(dilation)
    groups, taps = c // cg, kh * kw
    ho, wo = offset.shape[-2:]
    og = offset.shape[1] // (2 * taps)
    length = taps * ho * wo
    pdt = torch.promote_types(offset.dtype, torch.float32)  # sampling positions need more than bfloat16
    dev = x.device
    off = offset.to(pdt).reshape(b, og, taps, 2, ho, wo)
    base_y = (torch.arange(ho, device=dev, dtype=pdt) * sh - ph).view(ho, 1) \
        + (torch.arange(kh, device=dev, dtype=pdt) * dh).repeat_interleave(kw).view(taps, 1, 1)
    base_x = (torch.arange(wo, device=dev, dtype=pdt) * sw - pw).view(1, wo) \
        + (torch.arange(kw, device=dev, dtype=pdt) * dw).repeat(kh).view(taps, 1, 1)
    py, px = base_y + off[:, :, :, 0], base_x + off[:, :, :, 1]  # (B, og, taps, Ho, Wo)
    y0f, x0f = torch.floor(py), torch.floor(px)
    ly, lx = py - y0f, px - x0f
    y0, x0 = y0f.long(), x0f.long()
    src = x.reshape(b, og, c // og, h * w)
    cols = x.new_zeros(b, og, c // og, length)
    for cy, cx, wgt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                        (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        valid = (cy >= 0) & (cy <= h - 1) & (cx >= 0) & (cx <= w - 1)
        idx = (cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).reshape(b, og, 1, length)
        vals = torch.gather(src, 3, idx.expand(b, og, c // og, length))
        cols = cols + vals * (wgt * valid).to(x.dtype).reshape(b, og, 1, length)
    if mask is not None:
        cols = cols * mask.reshape(b, og, 1, length)
    cols = cols.reshape(b, groups, cg * taps, ho * wo)
    out = torch.matmul(weight.reshape(groups, o // groups, cg * taps), cols)  # (B, groups, O/groups, Ho*Wo)
    out = out.reshape(b, o, ho, wo)
    return out if bias is None else out + bias.view(1, o, 1, 1)


class _DeformConvBase(nn.Module):
    """Weight, bias and the zero-initialised offset (and mask) predictor shared by DCN v1 and v2."""

    _mask_channels = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, offset_groups: int = 1, bias: bool = True):
        super().__init__()
        k, self.stride, padding, self.dilation = conv_geometry(in_channels, out_channels, kernel_size, stride, padding,
                                                               dilation, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.padding = to_2tuple(padding)
        self.offset_groups = check_positive_int("offset_groups", offset_groups)
        check_divisible("in_channels", in_channels, "offset_groups", offset_groups)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *k))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        taps = k[0] * k[1]
        self.conv_offset = nn.Conv2d(in_channels, (2 + self._mask_channels) * offset_groups * taps, k, self.stride,
                                     self.padding, self.dilation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.conv_offset.weight)  # offsets start at 0 (and masks at sigmoid(0) = 0.5)
        nn.init.zeros_(self.conv_offset.bias)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={tuple(self.weight.shape[-2:])}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"offset_groups={self.offset_groups}")


@register_block("deformable_conv", family="conv", layout="conv",
                paper="Dai et al., Deformable Convolutional Networks, ICCV 2017", url="https://arxiv.org/abs/1703.06211",
                example=Example(args=(16, 32, 3, 2), input_shape=(2, 16, 14, 14)))
class DeformableConv(_DeformConvBase):
    """Deformable convolution (DCN v1) with its offset predictor.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size, stride, padding (``None``: "same"), dilation, groups, bias: of the convolution.
        offset_groups: channel groups sharing one offset field (deformable groups; paper: 1).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        return deform_conv2d(x, self.conv_offset(x), self.weight, self.bias, self.stride, self.padding,
                             self.dilation)
