"""Involution (Li et al., Involution: Inverting the Inherence of Convolution for Visual Recognition,
CVPR 2021, arXiv 2103.06255).

A spatial-specific, channel-agnostic kernel: at every output position ``(i, j)`` a KxK kernel per group is
generated from the input, ``H_{i,j} = W1 sigma(BN(W0 X_pool[i, j]))`` (``W0: C -> C/r`` 1x1, BN, ReLU;
``W1: C/r -> G K^2`` 1x1 with bias), and shared by the ``C/G`` channels of its group:
``Y[k, i, j] = sum_{u, v} H[g(k), u, v, i, j] X[k, s i + u - K//2, s j + v - K//2]`` (zero padding).
With stride s the kernel generator sees ``X`` average-pooled by s.  Deviation from the official code: the
pooling uses ``ceil_mode=True`` (averaging the valid pixels of a partial window) so that, like the unfold of
the patches, it gives ``ceil(H / s)`` rows on odd sizes; the official ``AvgPool2d(s, s)`` floors and then
fails to reshape.  Defaults are RedNet's: K=7, 16 channels per group, r=4.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    square_conv_geometry,
    ConvNormAct, LayerType, as_memory_format, check_divisible, check_nchw, check_positive_int, is_channels_last,
    local_aggregate, reduced_channels, window_count,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._conv_base import check_fixed_conv_args

__all__ = ["Involution"]


@register_block("involution", family="conv", layout="conv",
                paper="Li et al., Involution: Inverting the Inherence of Convolution for Visual Recognition, CVPR 2021",
                url="https://arxiv.org/abs/2103.06255",
                example=Example(args=(32, 32, 7, 2), input_shape=(2, 32, 14, 14)))
@validated()
class Involution(nn.Module):
    """Involution: per-position kernels generated from the input, shared across the channels of a group.

    Args:
        in_channels, out_channels: channels (involution keeps the channel count: they must be equal).
        kernel_size: K (odd; RedNet: 7 in the bottlenecks, 3 in the stem).
        stride: s; the kernel generator works on the s x s average-pooled input.
        group_channels: channels sharing one kernel (paper: 16, so G = C / 16 groups).
        reduction: r of the kernel generator's bottleneck ``C -> max(1, C // r)`` (paper: 4).
        act_layer, norm_layer: of the bottleneck (paper: ReLU, BatchNorm).

    :meth:`from_conv_args` builds it from ``nn.Conv2d``'s arguments, for ``ConvNormAct(conv_layer=...)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 7, stride: int = 1,
                 group_channels: int = 16, reduction: int = 4, act_layer: LayerType = "relu",
                 norm_layer: LayerType = "batchnorm"):
        super().__init__()
        self.kernel_size, self.stride, _ = square_conv_geometry(in_channels, out_channels, kernel_size, stride)
        if out_channels != in_channels:
            raise ValueError(f"involution keeps the channel count: out_channels ({out_channels}) must equal "
                             f"in_channels ({in_channels})")
        check_positive_int("group_channels", group_channels)
        check_divisible("in_channels", in_channels, "group_channels", group_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.group_channels = group_channels
        self.groups = in_channels // group_channels
        k, rd = self.kernel_size, reduced_channels(in_channels, reduction)
        self.pool = nn.AvgPool2d(self.stride, self.stride, ceil_mode=True) if self.stride > 1 else nn.Identity()
        self.reduce = ConvNormAct(in_channels, rd, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.span = nn.Conv2d(rd, k * k * self.groups, 1)

    @classmethod
    def from_conv_args(cls, in_channels: int, out_channels: int, kernel_size: int = 7, stride: int = 1,
                       padding=None, dilation: int = 1, groups: int = 1, bias: bool = False, **kwargs) -> "Involution":
        """An involution from ``nn.Conv2d``'s arguments (``ConvNormAct(conv_layer=Involution.from_conv_args)``,
        RedNet's involution -> BN -> ReLU): it has "same" padding, no dilation, no convolution groups (its own
        groups are ``in_channels / group_channels``) and no bias, so only those values are accepted; ``kwargs``
        go to the constructor."""
        check_fixed_conv_args(cls.__name__, kernel_size, padding, dilation, groups, bias)
        return cls(in_channels, out_channels, kernel_size, stride, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        # (not under the compiler: a size-dependent choice would fix an export's sizes)
        if (not torch.compiler.is_compiling() and not is_channels_last(x)
                and self.group_channels > window_count(x.shape[-1], self.stride) > 0):
            # the aggregation's inner loop runs along an output row (NCHW) or over a group's channels (channels-last):
            # when the group is the longer run, an NCHW map goes through the channels-last form (copied in and out;
            # measured at batch 8, 2 threads, group 16: 1024x7x7 0.47x eval / 0.86x training, 512x14x14 0.84x /
            # 1.05x; at 28x28 and 56x56, where the rows are longer, 1.2-1.4x: the NCHW form)
            return self._aggregate(as_memory_format(x, torch.channels_last)).contiguous()
        return self._aggregate(x)

    def _aggregate(self, x: torch.Tensor) -> torch.Tensor:
        k, g = self.kernel_size, self.groups
        kernel = self.span(self.reduce(self.pool(x)))  # (B, G*K*K, Ho, Wo)
        b, _, ho, wo = kernel.shape
        # each group's K*K kernel at every position, applied to its C/G channels' K x K neighbourhoods
        if is_channels_last(x):  # on the (B, H, W, C) memory: no transposing copy in or out
            xv = x.permute(0, 2, 3, 1).view(b, *x.shape[-2:], g, self.group_channels)
            kv = kernel.permute(0, 2, 3, 1).reshape(b, ho, wo, g, 1, k * k)
            out = local_aggregate(xv, kv, k, self.stride, channels_last=True)    # (B, Ho, Wo, G, C/G)
            return out.view(b, ho, wo, self.in_channels).permute(0, 3, 1, 2)
        out = local_aggregate(x.view(b, g, self.group_channels, *x.shape[-2:]), kernel.view(b, g, 1, k * k, ho, wo),
                              k, self.stride)
        return out.reshape(b, self.in_channels, ho, wo)
