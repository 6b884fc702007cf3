"""Double Attention (Chen et al., A^2-Nets: Double Attention Networks, NeurIPS 2018, arXiv 1810.11579).

With X (C, h*w): ``A = phi(X)`` (c_m maps), ``B = softmax(theta(X))`` (n attention maps, each normalised over
the h*w positions) and ``V = softmax(rho(X))`` (n attention vectors, each normalised over the n maps at a
position), all 1x1 convolutions.  Gather: ``G = A B^T`` (c_m x n global descriptors, Eq. 4); distribute:
``Z = G V`` (Eq. 5), i.e. ``z_i = sum_j v_ij g_j``.  A 1x1 convolution maps Z back to C channels and the block
is residual: ``Y = X + conv(Z)``.  The paper leaves c_m and c_n as hyper-parameters (both reduced below C to
keep the block light); we default to ``c_m = c_n = C / 4``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import check_nchw, check_positive_int, is_channels_last, is_plain, reduced_channels
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["DoubleAttention"]


@register_block("double_attention", family="attention", layout="nchw",
                paper="Chen et al., A^2-Nets: Double Attention Networks, NeurIPS 2018",
                url="https://arxiv.org/abs/1810.11579",
                example=Example(args=(64,), kwargs={}, input_shape=(2, 64, 14, 14)))
@validated()
class DoubleAttention(nn.Module):
    """Gather global features by spatial attention, distribute them by per-position attention.

    Args:
        channels: input (= output) channels C.
        c_m: channels of the gathered features A (default ``max(1, C // 4)``).
        c_n: number n of global descriptors / attention maps (default ``max(1, C // 4)``).
    """

    def __init__(self, channels: int, c_m: int | None = None, c_n: int | None = None):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.c_m = check_positive_int("c_m", c_m) if c_m is not None else reduced_channels(channels, 4)
        self.c_n = check_positive_int("c_n", c_n) if c_n is not None else reduced_channels(channels, 4)
        self.phi = nn.Conv2d(channels, self.c_m, 1)      # A: features to gather
        self.theta = nn.Conv2d(channels, self.c_n, 1)    # B: gathering attention maps
        self.rho = nn.Conv2d(channels, self.c_n, 1)      # V: distribution attention vectors
        self.proj = nn.Conv2d(self.c_m, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        # the three 1x1 convolutions phi, theta, rho read x once, as one convolution on their stacked weights
        # (hooked or replaced ones are called, each on its own)
        convs = (self.phi, self.theta, self.rho)
        if all(is_plain(conv, nn.Conv2d) for conv in convs):
            weight = torch.cat([conv.weight for conv in convs])
            bias = torch.cat([conv.bias for conv in convs])
            out = F.conv2d(x, weight, bias).flatten(2)
        else:
            out = torch.cat([conv(x).flatten(2) for conv in convs], dim=1)
        a, attn_maps, attn_vecs = out.split([self.c_m, self.c_n, self.c_n], dim=1)
        attn_maps = attn_maps.softmax(dim=2)                        # (B, n, N): each map sums to 1 over N
        attn_vecs = attn_vecs.softmax(dim=1)                        # (B, n, N): sums to 1 over n per position
        g = torch.bmm(a, attn_maps.transpose(1, 2))                 # (B, c_m, n)  gather
        if is_channels_last(x):  # z laid out (B, N, c_m) as x: z^T = attn_vecs^T g^T
            z = torch.bmm(attn_vecs.transpose(1, 2), g.transpose(1, 2)).transpose(1, 2)
        else:
            z = torch.bmm(g, attn_vecs)                             # (B, c_m, N)  distribute
        out = self.proj(z.unflatten(2, x.shape[2:]))
        # the residual added in place into the projection's output (its backward does not need that output),
        # unless a hook may hold that output
        return out.add_(x) if is_plain(self.proj, nn.Conv2d) else out + x
