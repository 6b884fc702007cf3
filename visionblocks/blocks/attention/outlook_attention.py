"""Outlook attention, from VOLO: Vision Outlooker for Visual Recognition (Yuan et al., 2021, arXiv 2106.13112).

For every (strided) location ``(i, j)`` a linear layer reads the token there (average-pooled over the stride)
and predicts, per head, a ``K^2 x K^2`` attention matrix over the ``K x K`` window centred on it:
``A_ij = softmax(W_A x_ij * d^-1/2)`` (softmax over the last axis); the window's values ``V = W_V x`` are mixed
by it, ``Y_window = A_ij V_window``, and the overlapping windows are summed back ("fold") to the full
resolution before the output projection (Eq. 1-4 of the paper, with the stride of the official code).

The attention weights are *generated* by a linear layer, not by query-key dot products, so there is no
``Q K^T`` for ``F.scaled_dot_product_attention`` to fuse: the softmax is applied explicitly.  The windows
are taken with zero padding ``K // 2`` and the pooling uses ``ceil_mode``, so every H and W works without
cropping (``ceil(H / s) x ceil(W / s)`` windows).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import check_divisible, check_nchw, check_odd, check_positive_int
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["OutlookAttention"]


@register_block("outlook_attention", family="attention", layout="nchw",
                paper="Yuan et al., VOLO: Vision Outlooker for Visual Recognition, TPAMI 2022 (arXiv 2021)",
                url="https://arxiv.org/abs/2106.13112",
                example=Example(args=(192,), kwargs={"num_heads": 6, "kernel_size": 3, "stride": 2},
                                input_shape=(2, 192, 14, 14)))
@validated(kernel_size="odd")
class OutlookAttention(nn.Module):
    """Outlook attention (VOLO's first-stage token mixer), on (B, C, H, W).

    Args:
        channels: input (= output) channels C.
        num_heads: heads; C must be divisible by it (VOLO-D1: 6 heads at C=192).
        kernel_size: K, the (odd) local window; the window is zero padded by ``K // 2`` (paper: 3).
        stride: the attention map is predicted on a ``stride``-pooled grid (official code: 2).
        qkv_bias: bias of the value projection (paper: False).
        attn_drop, proj_drop: dropout on the attention weights / the output.
    """

    def __init__(self, channels: int, num_heads: int = 6, kernel_size: int = 3, stride: int = 2,
                 qkv_bias: bool = False, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.stride = check_positive_int("stride", stride)
        check_divisible("channels", channels, "num_heads", num_heads)
        check_odd("kernel_size", kernel_size, "windows centred on a location")
        self.padding = kernel_size // 2
        self.head_dim = channels // num_heads
        self.scale = self.head_dim ** -0.5
        kk = kernel_size * kernel_size
        self.v = nn.Conv2d(channels, channels, 1, bias=qkv_bias)
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        self.attn = nn.Conv2d(channels, num_heads * kk * kk, 1)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        B, C, H, W = x.shape
        k, kk, nh = self.kernel_size, self.kernel_size ** 2, self.num_heads
        # values of every window: (B, heads, L, K*K, d), L = ceil(H/s) * ceil(W/s)
        v = F.unfold(self.v(x), k, padding=self.padding, stride=self.stride)
        L = v.shape[-1]
        v = v.reshape(B, nh, self.head_dim, kk, L).permute(0, 1, 4, 3, 2)
        # one K^2 x K^2 attention matrix per window and head, predicted from the pooled token
        a = self.attn(self.pool(x)).reshape(B, nh, kk, kk, L).permute(0, 1, 4, 2, 3)
        a = self.attn_drop(torch.softmax(a * self.scale, dim=-1))
        y = (a @ v).permute(0, 1, 4, 3, 2).reshape(B, C * kk, L)
        y = F.fold(y, (H, W), k, padding=self.padding, stride=self.stride)
        return self.proj_drop(self.proj(y))
