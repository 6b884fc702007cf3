"""Efficient Channel Attention (Wang et al., CVPR 2020, arXiv 1910.03151).

A 1-D convolution of adaptive size ``k = |log2(C)/gamma + b/gamma|_odd`` across the pooled channel
descriptor replaces SE's bottleneck MLP: ``y = x * sigmoid(conv1d_k(avgpool(x)))``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import check_nchw, check_odd, check_positive_int, is_plain, spatial_mean
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["EfficientChannelAttention", "eca_kernel_size"]


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """The paper's adaptive kernel size: the odd number nearest to ``(log2(C) + b) / gamma`` (rounded up)."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@register_block("eca", family="attention", layout="nchw",
                paper="Wang et al., ECA-Net: Efficient Channel Attention for Deep CNNs, CVPR 2020",
                url="https://arxiv.org/abs/1910.03151", example=Example(args=(64,), input_shape=(2, 64, 14, 14)))
@validated(kernel_size="odd")
class EfficientChannelAttention(nn.Module):
    """Channel gate by a 1-D convolution over the pooled channels.

    Args:
        channels: input (= output) channels C.
        kernel_size: fixed 1-D kernel size; ``None`` (default) uses the paper's adaptive size.
        gamma, b: the adaptive-size mapping (paper: 2 and 1).
    """

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: int = 2, b: int = 1):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        k = eca_kernel_size(channels, gamma, b) if kernel_size is None else check_positive_int("kernel_size", kernel_size)
        self.kernel_size = check_odd("kernel_size", k)
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def channel_conv(self, s: torch.Tensor) -> torch.Tensor:
        """``self.conv`` (the k-tap 1-D convolution, "same" zero padding) across the C values of (B, C) ``s`` ->
        (B, C, 1), as a (B, C, k) x (k, 1) product of the padded sliding windows: the same values without a
        oneDNN convolution on a 1-channel signal.  A hooked or replaced ``conv`` is called, and so is the plain one
        under ``torch.jit.trace`` (the TorchScript ONNX exporter has no sliding-window ``unfold`` for an input
        whose size is dynamic)."""
        if not is_plain(self.conv, nn.Conv1d) or torch.jit.is_tracing():
            return self.conv(s[:, None, :]).transpose(1, 2)
        p = (self.kernel_size - 1) // 2
        windows = F.pad(s, (p, p)).unfold(-1, self.kernel_size, 1)                  # (B, C, k)
        return windows @ self.conv.weight.view(self.kernel_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        return x * torch.sigmoid(self.channel_conv(spatial_mean(x))).unsqueeze(-1)
