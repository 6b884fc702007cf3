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

Computation: the values are projected token-major, (B, H, W, C), by a matrix product on the input's own layout,
and gathered into the windows by K^2 strided copies (one per window offset, ``layers.gather_windows``); the
windows are summed back by K^2 strided additions (``layers.fold_windows``, its adjoint).  ATen's
``unfold``/``fold`` (im2col/col2im) and a softmax over a short strided last axis cost 2.6x this at VOLO-D1's
first stage (8x192x28x28, eval, 2 threads: 39 -> 15 ms); the 1x1 projections keep their ``nn.Conv2d``
parameters (the official code's layout).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (avg_pool_ceil, check_divisible, check_nchw, check_odd, check_positive_int, fold_windows,
                                 gather_windows, is_plain)
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
        kernel_size: K, the (odd) local window; the window is zero padded by ``K // 2`` (paper: 3).  With K = 1
            the softmax runs over one element: every attention weight is 1, the block is its value and output
            projections, and ``attn`` gets no gradient.
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
        self.attn = nn.Conv2d(channels, num_heads * kk * kk, 1)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        if torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
            return self._forward_unfold(x)
        B, C, H, W = x.shape
        k, kk, nh, s = self.kernel_size, self.kernel_size ** 2, self.num_heads, self.stride
        # values, token-major (B, H, W, heads, d), gathered into every window: (B, lh, lw, heads, K*K, d)
        v = _tokens_linear(x, self.v).view(B, H, W, nh, self.head_dim)
        windows = gather_windows(v, k, s)
        # one K^2 x K^2 attention matrix per window and head, predicted from the pooled token; the softmax runs
        # on the (B, heads, K^2, K^2, lh, lw) layout of the projection, over its contiguous window axis
        p = avg_pool_ceil(x, s)
        lh, lw = p.shape[-2:]                                 # ceil(H / s) x ceil(W / s) windows
        p = p.reshape(B, C, lh * lw)
        if is_plain(self.attn, nn.Conv2d):
            a = torch.baddbmm((self.attn.bias * self.scale).view(1, -1, 1),
                              self.attn.weight.view(-1, C).expand(B, -1, -1), p, alpha=self.scale)
        else:  # a hooked or replaced projection is called on the pooled map
            a = self.attn(p.view(B, C, lh, lw)).flatten(2) * self.scale
        a = self.attn_drop(torch.softmax(a.view(B, nh, kk, kk, lh, lw), dim=3)).permute(0, 4, 5, 1, 2, 3)
        y = a @ windows                                       # Y_window = A V_window: (B, lh, lw, heads, K*K, d)
        # fold: the overlapping windows summed back to the full resolution
        out = fold_windows(y, (H, W), k, s)                   # (B, H, W, heads, d)
        return self.proj_drop(_tokens_linear_to_map(out.view(B, H * W, C), self.proj, x))

    def _forward_unfold(self, x: torch.Tensor) -> torch.Tensor:
        """The same function with ``unfold``/``fold``, for ``torch.export`` and ONNX: its shapes are plain
        expressions of H and W (the strided copies' clamped slice bounds would make an exported program
        specialise to the example's size).  ``torch.compile`` keeps the strided copies: with this form, inductor
        (torch 2.13, CPU) generated a kernel that corrupts the heap at 8x192x28x28 ("double free or corruption"
        in eval; the same with the unfold/fold code before the strided copies)."""
        B, C, H, W = x.shape
        k, kk, nh = self.kernel_size, self.kernel_size ** 2, self.num_heads
        v = F.unfold(self.v(x), k, padding=self.padding, stride=self.stride)      # (B, C*K*K, L)
        L = v.shape[-1]
        v = v.reshape(B, nh, self.head_dim, kk, L).permute(0, 1, 4, 3, 2)
        a = self.attn(F.avg_pool2d(x, self.stride, self.stride, ceil_mode=True)).reshape(B, nh, kk, kk, L)
        a = self.attn_drop(torch.softmax(a * self.scale, dim=3)).permute(0, 1, 4, 2, 3)
        y = (a @ v).permute(0, 1, 4, 3, 2).reshape(B, C * kk, L)
        if torch.jit.is_tracing():  # the TorchScript ONNX exporter cannot translate fold (col2im) at any opset
            return self.proj_drop(self.proj(self._fold_transposed(y, H, W)))
        return self.proj_drop(self.proj(F.fold(y, (H, W), k, padding=self.padding, stride=self.stride)))

    def _fold_transposed(self, y: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """``F.fold(y, (H, W), k, padding, stride)`` as a transposed convolution: each of the K*K window positions
        is one input channel whose one-hot k x k kernel puts it at its offset (the overlapping windows summed), the
        (B, C) pairs batched.  Unpadded, its output starts at the first window's start (-padding) and ends at the
        last window's end: padded or cropped (negative padding) to the map."""
        k, s, p = self.kernel_size, self.stride, self.padding
        B, kk = y.shape[0], k * k
        lh, lw = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        one_hot = torch.eye(kk, dtype=y.dtype, device=y.device).view(kk, 1, k, k)
        out = F.conv_transpose2d(y.reshape(-1, kk, lh, lw), one_hot, stride=s)
        out = F.pad(out, (-p, W + p - out.shape[-1], -p, H + p - out.shape[-2]))
        return out.reshape(B, -1, H, W)


def _tokens_linear(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution of a (B, C, H, W) map, returned token-major as (B, H*W, C_out), as a matrix product on
    the map's own layout (NCHW or channels-last): no copy of the input, no oneDNN reorder.  A hooked or
    replaced ``conv`` is called."""
    B, C, H, W = x.shape
    if not is_plain(conv, nn.Conv2d):
        return conv(x).permute(0, 2, 3, 1).reshape(B, H * W, -1)
    if x.is_contiguous():
        xt = x.view(B, C, H * W).transpose(1, 2)
        y = torch.bmm(xt, conv.weight.view(-1, C).t().expand(B, -1, -1))
    else:
        y = torch.matmul(x.permute(0, 2, 3, 1).reshape(B, H * W, C), conv.weight.view(-1, C).t())
    return y if conv.bias is None else y + conv.bias


def _tokens_linear_to_map(t: torch.Tensor, conv: nn.Conv2d, like: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution of (B, H*W, C) tokens, returned as a (B, C_out, H, W) map in the layout of ``like``
    (a hooked or replaced ``conv`` is called on the tokens' (B, C, H, W) view)."""
    B, C, H, W = like.shape
    if not is_plain(conv, nn.Conv2d):
        return conv(t.view(B, H, W, C).permute(0, 3, 1, 2))
    w = conv.weight.view(-1, C)
    if like.is_contiguous():
        bias = conv.bias.view(1, -1, 1) if conv.bias is not None else t.new_zeros(1, 1, 1)
        return torch.baddbmm(bias, w.expand(B, -1, -1), t.transpose(1, 2)).view(B, w.shape[0], H, W)
    return F.linear(t, w, conv.bias).view(B, H, W, w.shape[0]).permute(0, 3, 1, 2)
