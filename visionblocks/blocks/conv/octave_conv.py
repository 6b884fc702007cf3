"""Octave Convolution (Chen et al., "Drop an Octave: Reducing Spatial Redundancy in Convolutional Neural Networks
with Octave Convolution", ICCV 2019, arXiv 1904.05049).

Features are a pair ``(X^H, X^L)``: a high-frequency part at full resolution (``(1 - alpha) C`` channels) and a
low-frequency part at half resolution (``alpha C`` channels).  With ``f`` a convolution, ``pool`` a 2x2 average
pooling and ``up`` a nearest-neighbour x2 upsampling (paper, Sec. 3.2-3.3)::

    Y^H = f(X^H; W^{H->H}) + up(f(X^L; W^{L->H}))
    Y^L = f(X^L; W^{L->L}) + f(pool(X^H); W^{H->L})

With stride 2 (paper Sec. 3.3, and the official code) the high input is first average-pooled, the low input is
pooled for the L->L path, and the L->H path needs no upsampling::

    Y^H = f(pool(X^H); W^{H->H}) + f(X^L; W^{L->H})
    Y^L = f(pool(X^L); W^{L->L}) + f(pool(pool(X^H)); W^{H->L})

``alpha_in = 0`` (first octave layer) takes a plain tensor; ``alpha_out = 0`` (last layer) gives ``Y^L = None``.
Odd sizes: the low part of an ``H x W`` high part is ``ceil(H/2) x ceil(W/2)``; pooling uses ``ceil_mode`` (a
partial border window averages the pixels it covers) and the upsampled L->H map is cropped to ``H x W`` (at even
sizes both are exactly the paper's operators).  The parameter count equals that of the plain convolution
``in_channels -> out_channels``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import check_nchw, crop_to, square_conv_geometry
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block


__all__ = ["OctaveConv", "octave_split"]


def octave_split(channels: int, alpha: float) -> tuple[int, int]:
    """(high, low) channel counts of ``channels`` with a fraction ``alpha`` at low frequency (``int(alpha * C)``)."""
    low = int(alpha * channels)
    return channels - low, low


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2, 2, ceil_mode=True)


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return crop_to(F.interpolate(x, scale_factor=2.0, mode="nearest"), *size)


def _make_inputs(batch=None, size=None, bad=None, generator=None, channels=(32, 32)):
    b = 2 if batch is None else batch
    h, w = (16, 16) if size is None else size
    ch, cl = channels
    if bad == "channels":
        ch += 1
    shapes = [(b, ch, h, w), (b, cl, math.ceil(h / 2), math.ceil(w / 2))]
    if bad == "rank":
        shapes = [s[1:] for s in shapes]
    return tuple(torch.randn(*s, generator=generator, dtype=torch.float64).float() for s in shapes)


def _output_shapes(inputs, channels=(32, 32), stride=1):
    x = inputs[0]
    h, w = math.ceil(x.shape[2] / stride), math.ceil(x.shape[3] / stride)
    return ((x.shape[0], channels[0], h, w), (x.shape[0], channels[1], math.ceil(h / 2), math.ceil(w / 2)))


@register_block("octave_conv", family="conv", layout="special",
                paper="Chen et al., Drop an Octave: Reducing Spatial Redundancy in Convolutional Neural Networks "
                      "with Octave Convolution, ICCV 2019",
                url="https://arxiv.org/abs/1904.05049",
                example=Example(args=(64, 64, 3), kwargs={"alpha_in": 0.5, "alpha_out": 0.5},
                                make_inputs=_make_inputs, output_shapes=_output_shapes),
                notes="forward(x_h, x_l=None) -> (y_h, y_l); x_l is ceil(H/2) x ceil(W/2); y_l is None when "
                      "alpha_out == 0")
@validated()
class OctaveConv(nn.Module):
    """Octave convolution on a (high, low) frequency pair.

    ``forward(x_h, x_l=None)`` returns ``(y_h, y_l)``: ``x_h`` is (B, in_h, H, W), ``x_l`` (B, in_l, ceil(H/2),
    ceil(W/2)) and must be ``None`` exactly when ``alpha_in == 0``; ``y_h`` is (B, out_h, H', W') with
    ``H' = ceil(H / stride)`` and ``y_l`` is (B, out_l, ceil(H'/2), ceil(W'/2)), or ``None`` when
    ``alpha_out == 0``.  ``in_l = int(alpha_in * in_channels)``, ``in_h = in_channels - in_l`` (same for out).

    Args:
        in_channels, out_channels: total channels (high + low) of the input and the output.
        kernel_size: odd kernel of the four convolutions ("same" padding).
        stride: 1 or 2.
        alpha_in, alpha_out: low-frequency fractions in [0, 1) (paper: 0.5 inside a network, 0 at its ends).
        groups: groups of each of the four convolutions (must divide each non-empty channel part).
        bias: add a bias to the high and low outputs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 alpha_in: float = 0.5, alpha_out: float = 0.5, groups: int = 1, bias: bool = False):
        super().__init__()
        kernel_size, stride, pad = square_conv_geometry(in_channels, out_channels, kernel_size, stride, groups)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        for name, a in (("alpha_in", alpha_in), ("alpha_out", alpha_out)):
            if not 0.0 <= a < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {a}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.alpha_in, self.alpha_out = alpha_in, alpha_out
        self.in_h, self.in_l = octave_split(in_channels, alpha_in)
        self.out_h, self.out_l = octave_split(out_channels, alpha_out)
        for name, a, c in (("in", alpha_in, self.in_l), ("out", alpha_out, self.out_l)):
            if a > 0 and c == 0:
                raise ValueError(f"alpha_{name}={a} gives no low-frequency channel for {name}_channels")
        for name, c in (("in_h", self.in_h), ("in_l", self.in_l), ("out_h", self.out_h), ("out_l", self.out_l)):
            if c and c % groups:
                raise ValueError(f"{name} ({c}) must be divisible by groups ({groups})")

        def conv(cin: int, cout: int) -> nn.Module | None:
            return nn.Conv2d(cin, cout, kernel_size, 1, pad, groups=groups, bias=False) if cin and cout else None

        self.conv_hh = conv(self.in_h, self.out_h)
        self.conv_lh = conv(self.in_l, self.out_h)
        self.conv_hl = conv(self.in_h, self.out_l)
        self.conv_ll = conv(self.in_l, self.out_l)
        self.bias_h = nn.Parameter(torch.zeros(self.out_h)) if bias else None
        self.bias_l = nn.Parameter(torch.zeros(self.out_l)) if bias and self.out_l else None

    def _check(self, x_h: torch.Tensor, x_l: torch.Tensor | None) -> None:
        name = type(self).__name__
        check_nchw(x_h, self.in_h, name + " (high part)")
        if self.in_l == 0:
            if x_l is not None:
                raise ValueError(f"{name} has alpha_in=0 and takes no low-frequency input, got one of shape "
                                 f"{tuple(x_l.shape)}")
            return
        if x_l is None:
            raise ValueError(f"{name} has alpha_in={self.alpha_in}: it needs the low-frequency input "
                             f"(B, {self.in_l}, ceil(H/2), ceil(W/2)) besides x_h of shape {tuple(x_h.shape)}")
        check_nchw(x_l, self.in_l, name + " (low part)")
        h, w = x_h.shape[2], x_h.shape[3]
        if x_l.shape[0] != x_h.shape[0] or x_l.shape[2] != (h + 1) // 2 or x_l.shape[3] != (w + 1) // 2:
            raise ValueError(f"{name}: the low part must be (B, {self.in_l}, ceil(H/2), ceil(W/2)) for a high part "
                             f"of shape {tuple(x_h.shape)}, got {tuple(x_l.shape)}")

    def forward(self, x_h: torch.Tensor, x_l: torch.Tensor | None = None):
        self._check(x_h, x_l)
        if self.stride == 2:
            x_h = _pool(x_h)
        y_h = self.conv_hh(x_h) if self.conv_hh is not None else None
        y_l = self.conv_hl(_pool(x_h)) if self.conv_hl is not None else None
        if x_l is not None:
            if self.conv_lh is not None:
                l2h = self.conv_lh(x_l)
                if self.stride == 1:
                    l2h = _up(l2h, (x_h.shape[2], x_h.shape[3]))
                y_h = l2h if y_h is None else y_h + l2h
            if self.conv_ll is not None:
                l2l = self.conv_ll(_pool(x_l) if self.stride == 2 else x_l)
                y_l = l2l if y_l is None else y_l + l2l
        if self.bias_h is not None:
            y_h = y_h + self.bias_h.view(1, -1, 1, 1)
        if self.bias_l is not None:
            y_l = y_l + self.bias_l.view(1, -1, 1, 1)
        return y_h, y_l

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, stride={self.stride}, alpha_in={self.alpha_in}, "
                f"alpha_out={self.alpha_out}")
