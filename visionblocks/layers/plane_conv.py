"""The k x k convolution of a few pooled planes (the 2 -> 1 convolutions of spatial gates: CBAM, Misra et al.'s
triplet attention), in the form ATen runs fastest for the plane's shape.

oneDNN's direct convolution is poor with one or two channels.  When the plane is long and thin (P >= 4 Q, as
triplet attention's (C, W) and (H, C) planes: 256 x 28), the convolution is computed as a 1-d convolution along
the long axis whose channels are (input channel, position on the short axis) and whose weight is banded over the
short axis: ``W'[o*Q + q_out, c*Q + q_in, i] = w[o, c, i, q_in - q_out + k//2]`` (zero outside the band).  It does
``Q / k`` times the multiply-adds, in a kernel several times more efficient; measured forward on one thread,
batch 8, 2 -> 1, k = 7, in units of one broadcast multiply of an (8, 256, 28, 28) tensor: 256 x 28 plane 1.19
(direct 1.92), 256 x 7 0.56 (0.74), 256 x 56 3.2 (4.2); forward + backward 256 x 28 2.8 (4.4 channels-last);
square planes (28 x 28, 56 x 56) are faster direct, 128 x 56 is even.  The banded weight is rebuilt from
``weight`` at every call (a gather of ``k * Q * Q`` values per channel pair: the parameter stays the one a
state dict holds, and autograd reaches it through the gather).

Otherwise the direct convolution, on a channels-last copy of the (small) input when autograd records: oneDNN's
backward of a convolution with so few channels is 2-4x faster channels-last.  Under ``torch.compile`` /
``torch.export`` the plain convolution (the compiler chooses its own kernel; the form choice would fix sizes), and
so under a dispatch mode (``torch.utils.flop_counter`` counts the k x k convolution's multiply-adds, the network's
arithmetic, not the band's) and on the meta device.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .helpers import check_positive_int, counts_arithmetic
from .checks import check_odd
from .memory_format import as_memory_format

__all__ = ["PlaneConv2d"]

# banded when the long axis is at least LONG_RATIO times the short one and the short one is at most
# SHORT_LIMIT kernel widths (the measured crossovers above; beyond them the band's wasted multiply-adds win)
LONG_RATIO = 4
SHORT_LIMIT = 8


def _banded_weight(weight: torch.Tensor, q: int) -> torch.Tensor:
    """(O, C, kP, kQ) -> (O*q, C*q, kP): the 1-d weight along P, banded over a short axis of length ``q``."""
    o, c, kp, kq = weight.shape
    pos = torch.arange(q, device=weight.device)
    tap = pos.view(1, q) - pos.view(q, 1) + kq // 2                     # (q_out, q_in) -> tap along Q
    band = ((tap >= 0) & (tap < kq)).to(weight.dtype)
    w = weight[:, :, :, tap.clamp(0, kq - 1)] * band                    # (O, C, kP, q_out, q_in)
    return w.permute(0, 3, 1, 4, 2).reshape(o * q, c * q, kp)


def _banded_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=k//2)`` as a conv1d along dim 2 (P), banded over dim 3 (Q).  The input
    reshape is free when ``x``'s memory is laid out (B, C, Q, P)."""
    b, c, p, q = x.shape
    o = weight.shape[0]
    y = F.conv1d(x.transpose(2, 3).reshape(b, c * q, p), _banded_weight(weight, q),
                 None if bias is None else bias.repeat_interleave(q), padding=weight.shape[2] // 2)
    return y.view(b, o, q, p).transpose(2, 3)


class PlaneConv2d(nn.Conv2d):
    """A same-padded, stride-1 ``k x k`` convolution of a few planes (an ``nn.Conv2d``: same parameters, state-dict
    keys and function), computed banded for long thin planes (see the module docstring).

    Args:
        in_channels: input planes (2 for a Z-pool ``[max; mean]``).
        out_channels: output planes (1 for a gate).
        kernel_size: odd kernel size (square).
        bias: add a learnable bias (default False: a BatchNorm follows in the gates).
    """

    def __init__(self, in_channels: int, out_channels: int = 1, kernel_size: int = 7, bias: bool = False):
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_odd("kernel_size", check_positive_int("kernel_size", kernel_size))
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)

    def use_banded(self, height: int, width: int) -> bool:
        """Whether a (height, width) plane is long and thin enough for the banded form."""
        short, long = min(height, width), max(height, width)
        return long >= LONG_RATIO * short and short <= SHORT_LIMIT * self.kernel_size[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (the direct form also under torch.jit.trace: the banded one is chosen by the size and its weight built
        # by a size-dependent gather, which a trace would fix to the example's size)
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or x.ndim != 4 or counts_arithmetic(x):
            return super().forward(x)
        h, w = x.shape[-2:]
        if self.use_banded(h, w):
            if h >= w:  # (the banded result is a transposed view; its copy is one output's worth, small)
                return _banded_conv(x, self.weight, self.bias).contiguous()
            # band over H: the transposed problem (conv2d(x, w)^T = conv2d(x^T, w^T))
            return _banded_conv(x.transpose(2, 3), self.weight.transpose(2, 3), self.bias).transpose(2, 3)
        if torch.is_grad_enabled():
            x = as_memory_format(x, torch.channels_last)
        return super().forward(x)
