"""Per-sample kernels as one grouped convolution (the batch-as-groups trick of CondConv, Yang et al., NeurIPS 2019,
arXiv 1904.04971, and dynamic convolution, Chen et al., CVPR 2020, arXiv 1912.03458), and the bank of n kernels
both mix.  Not a block (not registered)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import check_positive_int, layout_like
from visionblocks.layers.validate import check_conv_input

from ._conv_base import ConvBase

__all__ = ["per_sample_conv2d", "KernelBankConv"]


def per_sample_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding,
                      dilation, groups: int) -> torch.Tensor:
    """``y[b] = conv2d(x[b], weight[b], bias[b])`` for every sample b, computed by one convolution whose
    groups are ``batch * groups``.  ``weight``: (B, O, C/groups, kh, kw); ``bias``: (B, O) or None.
    The output size comes from the convolution itself (not from the input size).

    Exported with a dynamic batch (``torch.export``, ``torch.onnx.export``), the group count would be symbolic,
    which ONNX's Conv (a constant ``group`` attribute) cannot take: there the windows are unfolded and each
    sample's kernel applied by one batched matrix product (the same sums)."""
    b, c, h, w = x.shape
    o = weight.shape[1]
    if not isinstance(b, int) and torch.compiler.is_exporting():
        return _per_sample_unfolded(x, weight, bias, stride, padding, dilation, groups)
    if b == 0:  # an empty batch: groups = b * groups would be 0; the (0, O, H', W') output of one kernel's shape
        return F.conv2d(x, weight.new_zeros(weight.shape[1:]), None, stride, padding, dilation, groups)
    y = F.conv2d(x.reshape(1, b * c, h, w), weight.reshape(b * o, *weight.shape[2:]),
                 None if bias is None else bias.reshape(b * o), stride, padding, dilation, b * groups)
    return y.reshape(b, o, y.shape[-2], y.shape[-1])


def _per_sample_unfolded(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding,
                         dilation, groups: int) -> torch.Tensor:
    """:func:`per_sample_conv2d` as unfolded windows (B, C kh kw, L) times each sample's (O, C/groups kh kw)
    kernel, group by group."""
    b, _, h, w = x.shape
    o, kh, kw = weight.shape[1], weight.shape[-2], weight.shape[-1]
    cols = F.unfold(x, (kh, kw), dilation, padding, stride)            # channel-major: a group's rows are adjacent
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = weight.reshape(b, groups, o // groups, -1) @ cols.reshape(b, groups, -1, cols.shape[-1])
    y = y.reshape(b, o, ho, wo)
    return y if bias is None else y + bias[:, :, None, None]


class KernelBankConv(ConvBase):
    """Base of the convolutions whose kernel is a per-sample mixture of n kernels (CondConv, dynamic
    convolution): the convolution's geometry (:class:`ConvBase`), the bank ``weight``
    (n, O, C/groups, kh, kw) and ``bias`` (n, O) or None, and runs ``conv(x, sum_k r_k W_k) + sum_k r_k b_k``
    for mixing weights r.

    Subclasses build their mixing-weight function, then call :meth:`reset_parameters`.
    ``count_name`` names n in error messages (``num_experts``, ``num_kernels``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding, dilation, groups: int,
                 bias: bool, count: int, count_name: str):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        check_positive_int(count_name, count)
        self.weight = nn.Parameter(torch.empty(count, out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(count, out_channels)) if bias else None

    def reset_parameters(self) -> None:
        """Each kernel initialised independently as ``nn.Conv2d`` does."""
        fan_in = self.weight[0, 0].numel()
        for i in range(self.weight.shape[0]):
            nn.init.kaiming_uniform_(self.weight[i], a=math.sqrt(5))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def mixed_conv(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``conv(x[b], sum_k r[b, k] W_k) + sum_k r[b, k] b_k`` for every sample b; r: (B, n)."""
        check_conv_input(x, self.kernel_size, self.padding, self.dilation, type(self).__name__)
        weight = (r @ self.weight.flatten(1)).view(r.shape[0], *self.weight.shape[1:])   # one (B, n) x (n, -1) mm
        bias = r @ self.bias if self.bias is not None else None
        return layout_like(per_sample_conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups), x)
