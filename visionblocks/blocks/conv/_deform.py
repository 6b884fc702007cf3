"""The deformable sampling both deformable convolutions share (DCN v1, Dai et al., ICCV 2017, arXiv 1703.06211;
DCN v2, Zhu et al., CVPR 2019, arXiv 1811.11168), in pure PyTorch with the semantics of
``torchvision.ops.deform_conv2d``: :func:`deform_conv2d`, and :class:`DeformConvBase`, the weight, bias and
zero-initialised offset (and mask) predictor of both blocks.  Not a block (not registered)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from visionblocks.layers import (check_divisible, check_nchw, check_positive_int, layout_like, records_grad,
                                 to_2tuple)
from visionblocks.layers.validate import check_conv_input

from ._conv_base import ConvBase

__all__ = ["deform_conv2d", "DeformConvBase"]

_DEFORM_CHUNKS = 4  # channel slices per gathered corner when no gradient flows through the sampling


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
    cpo = c // og  # channels per offset group
    src = x.reshape(b, og, cpo, h * w)
    m = None if mask is None else mask.reshape(b, og, 1, length).to(x.dtype)
    # cols (B, og, C / og, taps * Ho * Wo), the im2col buffer, is the one unfolded-size tensor kept: each bilinear
    # corner is gathered and accumulated into it in place, and the DCN v2 mask is folded into the (B, og, 1, L)
    # corner weights.  With autograd through the sampling, ``cols += vals * w`` (mul saves vals and w, the add
    # nothing, so the in-place update overwrites nothing saved; addcmul_ would cost an extra vals-sized temporary in
    # its backward).  Without it, ``addcmul_`` of the gathered corner, a slice of channels at a time, so that the
    # only other unfolded-size temporary is a fraction of cols.
    sampling_grad = records_grad(x, offset, m)
    step = cpo if sampling_grad else -(-cpo // _DEFORM_CHUNKS)
    cols = None if sampling_grad else x.new_zeros(b, og, cpo, length)
    for cy, cx, wgt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                        (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        valid = (cy >= 0) & (cy <= h - 1) & (cx >= 0) & (cx <= w - 1)
        idx = (cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).reshape(b, og, 1, length)
        wk = (wgt * valid).to(x.dtype).reshape(b, og, 1, length)
        if m is not None:
            wk = wk * m
        if sampling_grad:
            term = torch.gather(src, 3, idx.expand(b, og, cpo, length)) * wk
            cols = term if cols is None else cols.add_(term)
            del term
            continue
        for c0 in range(0, cpo, step):
            c1 = min(c0 + step, cpo)
            cols[:, :, c0:c1].addcmul_(torch.gather(src[:, :, c0:c1], 3, idx.expand(b, og, c1 - c0, length)), wk)
    cols = cols.reshape(b, groups, cg * taps, ho * wo)
    out = torch.matmul(weight.reshape(groups, o // groups, cg * taps), cols)  # (B, groups, O/groups, Ho*Wo)
    out = out.reshape(b, o, ho, wo)
    return out if bias is None else out + bias.view(1, o, 1, 1)


class DeformConvBase(ConvBase):
    """Deformable convolution with its offset predictor, a side convolution of the same geometry whose weights
    and bias start at zero (offsets 0, and masks sigmoid(0) = 0.5 when ``modulated``).

    The predictor's first ``2 * offset_groups * kh * kw`` output channels are the offsets; a ``modulated``
    (DCN v2) subclass adds ``offset_groups * kh * kw`` mask logits after them.
    """

    modulated = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, offset_groups: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self.offset_groups = check_positive_int("offset_groups", offset_groups)
        check_divisible("in_channels", in_channels, "offset_groups", offset_groups)
        k = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *k))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        taps = k[0] * k[1]
        self.num_offsets = 2 * offset_groups * taps  # (dy, dx) per offset group and tap, then the mask logits
        num_masks = offset_groups * taps if self.modulated else 0
        self.conv_offset = nn.Conv2d(in_channels, self.num_offsets + num_masks, k, self.stride, self.padding,
                                     self.dilation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        check_conv_input(x, self.kernel_size, self.padding, self.dilation, type(self).__name__)
        offset, mask = self.conv_offset(x), None
        if self.modulated:
            offset, mask = offset[:, :self.num_offsets], torch.sigmoid(offset[:, self.num_offsets:])
        y = deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask=mask)
        return layout_like(y, x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, offset_groups={self.offset_groups}"
