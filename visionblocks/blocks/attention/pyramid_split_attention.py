"""Pyramid Split Attention (Zhang et al., EPSANet: An Efficient Pyramid Squeeze Attention Block on
Convolutional Neural Network, 2021, arXiv 2105.14447).

SPC module: S branches ``F_i = Conv(k_i x k_i, G_i)(X)``, each a grouped convolution of the whole input to
C/S channels (kernels 3, 5, 7, 9 with groups 1, 4, 8, 16 by default, Eq. 1-2 and the authors' code).
SEWeight module (shared by the branches): ``Z_i = sigmoid(W1 ReLU(W0 avgpool(F_i)))`` (C/S -> C/(S r) -> C/S,
r = 16).  Attention: ``att_i = softmax_i(Z_i)``, the softmax across the S branches per channel (Eq. 6-7), and
``Out = cat_i(F_i * att_i)`` (Eq. 8-9).  No normalisation inside: in EPSANet the module is followed by the
bottleneck's BN-ReLU.

Deviation from the authors' code: it concatenates the weighted branches in reverse order; we keep the
order of the equations (a fixed channel permutation, the same function up to the next layer's weights).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvMlp, LayerType, check_divisible, check_nchw, check_odd, check_positive_int, reduced_channels,
    spatial_mean,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["PyramidSplitAttention"]


@register_block("pyramid_split_attention", family="attention", layout="nchw",
                paper="Zhang et al., EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional "
                      "Neural Network, 2021",
                url="https://arxiv.org/abs/2105.14447",
                example=Example(args=(64,), kwargs={}, input_shape=(2, 64, 14, 14)))
@validated(kernel_sizes="odd_ints", groups="ints")
class PyramidSplitAttention(nn.Module):
    """Multi-scale grouped convolutions re-weighted by a softmax over the scales.

    Args:
        channels: input channels C.
        out_channels: output channels (default ``channels``), split into ``len(kernel_sizes)`` branches.
        stride: stride of the branch convolutions (EPSANet downsamples here).
        kernel_sizes: k_i of the branches (paper: 3, 5, 7, 9).  With one branch the softmax over the branches is 1:
            the block is its convolution and the SEWeight module gets no gradient.
        groups: G_i of the branches (paper, EPSANet(Small): 1, 4, 8, 16).
        reduction: r of the shared SEWeight module (paper: 16).
        act_layer: SEWeight activation (paper: ReLU).
        rd_channels: explicit width of the SEWeight MLP (overrides ``reduction``; keyword only).
    """

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1,
                 kernel_sizes: tuple[int, ...] = (3, 5, 7, 9), groups: tuple[int, ...] = (1, 4, 8, 16),
                 reduction: int = 16, act_layer: LayerType = "relu", *, rd_channels: int | None = None):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        out_channels = channels if out_channels is None else check_positive_int("out_channels", out_channels)
        check_positive_int("stride", stride)
        kernel_sizes, groups = tuple(kernel_sizes), tuple(groups)
        if len(kernel_sizes) != len(groups) or not kernel_sizes:
            raise ValueError(f"kernel_sizes {kernel_sizes} and groups {groups} must be non-empty and of equal length")
        for i, k in enumerate(kernel_sizes):
            check_odd(f"kernel_sizes[{i}]", check_positive_int(f"kernel_sizes[{i}]", k))
        self.num_branches = s = len(kernel_sizes)
        check_divisible("out_channels", out_channels, "the number of branches", s)
        split = out_channels // s
        for g in groups:
            check_positive_int("groups", g)
            check_divisible("channels", channels, "groups", g)
            check_divisible("out_channels / branches", split, "groups", g)
        self.out_channels, self.split = out_channels, split
        self.convs = nn.ModuleList(nn.Conv2d(channels, split, k, stride, k // 2, groups=g, bias=False)
                                   for k, g in zip(kernel_sizes, groups))
        # the SEWeight module shared by the branches: C/S -> C/(S r) -> C/S on each branch's pooled vector
        self.se = ConvMlp(split, reduced_channels(split, reduction, rd_channels), act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        feats = torch.stack([conv(x) for conv in self.convs], dim=1)                  # (B, S, C/S, H, W)
        z = torch.sigmoid(self.se.forward_vector(spatial_mean(feats)))                 # (B, S, C/S)
        att = z.softmax(dim=1)[..., None, None]                                        # (B, S, C/S, 1, 1)
        return (feats * att).flatten(1, 2)
