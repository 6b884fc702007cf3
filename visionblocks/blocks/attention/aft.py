"""Attention Free Transformer: AFT-full, AFT-simple, AFT-local and AFT-conv (Zhai et al., An Attention Free
Transformer, 2021, arXiv 2105.14103, https://arxiv.org/abs/2105.14103).

With ``Q = X W_Q, K = X W_K, V = X W_V`` (linear projections, d = C):

* AFT-full: ``Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w_tt') V_t' / sum_t' exp(K_t' + w_tt')`` with learned
  pair-wise position biases ``w`` (T x T).  ``w`` ties the block to the sequence length T by design, so the
  block is ``fixed_size``: T is given to the constructor and other lengths are rejected.
* AFT-local: the same with ``w_tt' = 0`` outside the band ``|t - t'| < s`` (global connectivity is kept: the
  tokens outside the window still contribute with ``exp(K_t')``); also tied to T.
* AFT-simple: no position bias, ``Y_t = sigmoid(Q_t) * sum_t' softmax(K)_t' V_t'`` (any length).
* AFT-conv (images, h heads): per head i with an s x s kernel ``w^i``,
  ``Y = sigmoid(Q) * (conv(exp(K) V, exp(w) - 1) + sum exp(K) V) / (conv(exp(K), exp(w) - 1) + sum exp(K))``,
  i.e. AFT-local in 2-D with weights shared across positions (any size).  As in the paper, ``w`` is
  re-parameterized per head as ``gamma * (w - mean(w)) / std(w) + beta`` (``gamma``, ``beta`` start at 0, so
  the block starts as AFT-simple).

The weighted averages are computed as matrix products / convolutions, as the paper writes them; ``max K`` (per
channel) and ``max w`` (per row) are subtracted before the exponentials (they cancel in the ratio), so nothing
overflows.  Numerical range (inherent in those product forms, measured): AFT-full/local's ratio is 0/0 (NaN) when
no position has both a large ``K`` and a large ``w``, i.e. when ``max K + max_t' w_tt' - max_t' (K_t' + w_tt')``
exceeds the exponent range (~87 in float32, ~708 in float64); AFT-conv's ``sum exp(K) + conv(exp(K), exp(w) - 1)``
cancels where a very negative tap (``w`` below about -15 in float32, -35 in float64: ``gamma`` of 10-20) covers the
position of the largest ``K``, losing precision and then giving NaN.  Exact forms need the (T, T, C) weights per
sample (AFT-full) or every position's complement of its window (AFT-conv): the cost the paper's forms avoid.  The
paper specifies no output projection, so there is none.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (
    DerivedBuffers, check_divisible, check_nchw, check_nlc, check_odd, check_positive_int, check_tokens,
    float32_at_least, records_grad,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["AFTFull", "AFTLocal", "AFTSimple", "AFTConv", "aft_weighted_average"]

_PAPER = "Zhai et al., An Attention Free Transformer, 2021"
_URL = "https://arxiv.org/abs/2105.14103"


def aft_weighted_average(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, *,
                         overwrite_w: bool = False) -> torch.Tensor:
    """``sigmoid(Q_t) * sum_t' exp(K_t' + w_tt') V_t' / sum_t' exp(K_t' + w_tt')`` for (B, T, C) q/k/v, (T, T) w.

    Where no autograd graph is recorded, ``exp(w - max w)`` is built in place in one (T, T) copy of ``w``, or in
    ``w`` itself with ``overwrite_w=True`` (for a ``w`` the caller made for this call and drops after it).

    The factored form ``(exp(w) @ (exp(K) V)) / (exp(w) @ exp(K))`` shifts K and w by their own maxima, so a term
    is as small as ``exp(-(spread of K) - (spread of w))``: it is computed in float32 at least (also under
    ``torch.autocast``), where float16's exponent range would make the denominator 0 from spreads of ~9 each
    (0/0 = NaN); in float32 that takes spreads summing to ~87.
    """
    dtype = v.dtype
    with float32_at_least(q, k, v, w) as (q, k, v, w):
        if records_grad(q, k, v, w):
            ek = torch.exp(k - k.detach().amax(dim=1, keepdim=True))
            ew = torch.exp(w - w.detach().amax(dim=1, keepdim=True))
            return (torch.sigmoid(q) * ((ew @ (ek * v)) / (ew @ ek))).to(dtype)
        ew = w.sub_(w.amax(dim=1, keepdim=True)) if overwrite_w else w - w.amax(dim=1, keepdim=True)
        ew = ew.exp_()
        ek = torch.sub(k, k.amax(dim=1, keepdim=True)).exp_()
        num = ew @ (ek * v)
        num.div_(ew @ ek)
        return num.mul_(torch.sigmoid(q)).to(dtype)


class _AFTBase(nn.Module):
    """The fused Q/K/V projection of the AFT variants on token sequences."""

    def __init__(self, dim: int, qkv_bias: bool):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)


@register_block("aft_full", family="attention", layout="nlc", paper=_PAPER, url=_URL, fixed_size=True,
                example=Example(args=(64, 49), input_shape=(2, 49, 64)))
@validated()
class AFTFull(_AFTBase):
    """AFT-full over a sequence of exactly ``seq_len`` tokens, (B, T, C) -> (B, T, C).

    Args:
        dim: token dimension C.
        seq_len: T, the number of tokens the T x T position biases are built for.
        qkv_bias: biases on the Q/K/V projections.
    """

    def __init__(self, dim: int, seq_len: int, qkv_bias: bool = True):
        super().__init__(dim, qkv_bias)
        self.seq_len = check_positive_int("seq_len", seq_len)
        self.pos_bias = nn.Parameter(torch.zeros(seq_len, seq_len))

    # whether position_bias() returns a new tensor each call, which the inference path may then overwrite
    _fresh_position_bias = False

    def position_bias(self) -> torch.Tensor:
        """The (T, T) pair-wise position biases ``w``."""
        return self.pos_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nlc(x, self.dim, type(self).__name__)
        check_tokens(x, self.seq_len, type(self).__name__)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return aft_weighted_average(q, k, v, self.position_bias(), overwrite_w=self._fresh_position_bias)


@register_block("aft_local", family="attention", layout="nlc", paper=_PAPER, url=_URL, fixed_size=True,
                example=Example(args=(64, 49), kwargs={"window_size": 32}, input_shape=(2, 49, 64)))
@validated()
class AFTLocal(DerivedBuffers, AFTFull):
    """AFT-local: AFT-full with the position biases zeroed outside a band, (B, T, C) -> (B, T, C).

    Args:
        dim: token dimension C.
        seq_len: T, the number of tokens the position biases are built for.
        window_size: s, ``w_tt'`` is learned only where ``|t - t'| < s`` (paper's enwik8 AFT-local: 32).
        qkv_bias: biases on the Q/K/V projections.
    """

    def __init__(self, dim: int, seq_len: int, window_size: int = 32, qkv_bias: bool = True):
        super().__init__(dim, seq_len, qkv_bias)
        self.window_size = check_positive_int("window_size", window_size)
        self.init_derived_buffers()

    def derived_buffers(self) -> dict[str, torch.Tensor]:
        """``band``: the (T, T) mask ``|t - t'| < s``."""
        t = torch.arange(self.seq_len)
        return {"band": (t[:, None] - t[None, :]).abs() < self.window_size}

    _fresh_position_bias = True

    def position_bias(self) -> torch.Tensor:
        """``w`` inside the band ``|t - t'| < s``, 0 outside (a new tensor each call)."""
        return self.pos_bias * self.band


@register_block("aft_simple", family="attention", layout="nlc", paper=_PAPER, url=_URL,
                example=Example(args=(64,), input_shape=(2, 49, 64)))
@validated()
class AFTSimple(_AFTBase):
    """AFT-simple: ``sigmoid(Q_t) * sum_t' softmax(K)_t' V_t'`` (no position bias, any length), (B, N, C) -> same.

    Args:
        dim: token dimension C.
        qkv_bias: biases on the Q/K/V projections.
    """

    def __init__(self, dim: int, qkv_bias: bool = True):
        super().__init__(dim, qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nlc(x, self.dim, type(self).__name__)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        context = (k.softmax(dim=1) * v).sum(dim=1, keepdim=True)
        return torch.sigmoid(q) * context


@register_block("aft_conv", family="attention", layout="nchw", paper=_PAPER, url=_URL,
                example=Example(args=(64,), kwargs={"num_heads": 32, "kernel_size": 7}, input_shape=(2, 64, 14, 14)))
@validated()
class AFTConv(nn.Module):
    """AFT-conv on an image (B, C, H, W) -> (B, C, H, W): local 2-D position biases shared across positions.

    Args:
        channels: C (must be divisible by ``num_heads``).
        num_heads: h, one s x s kernel per head (paper's AFT-conv-tiny: 32 heads).
        kernel_size: s, odd and >= 3 (paper's AFT-conv-tiny: 7).
        qkv_bias: biases on the 1x1 Q/K/V projections.
    """

    def __init__(self, channels: int, num_heads: int = 32, kernel_size: int = 7, qkv_bias: bool = True):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.num_heads = check_positive_int("num_heads", num_heads)
        check_divisible("channels", channels, "num_heads", num_heads)
        self.kernel_size = check_odd("kernel_size", check_positive_int("kernel_size", kernel_size))
        if kernel_size < 3:  # the biases are normalised by their std over the s x s kernel: none for s = 1
            raise ValueError(f"kernel_size must be an odd int >= 3 (AFT-conv normalises the s x s position biases "
                             f"by their standard deviation, undefined for one element), got {kernel_size}")
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=qkv_bias)
        self.pos_bias = nn.Parameter(torch.randn(num_heads, 1, kernel_size, kernel_size) * 0.02)
        self.gamma = nn.Parameter(torch.zeros(num_heads, 1, 1, 1))
        self.beta = nn.Parameter(torch.zeros(num_heads, 1, 1, 1))

    def position_kernel(self) -> torch.Tensor:
        """``exp(w) - 1`` of the re-parameterized biases, one (s, s) kernel per channel: (C, 1, s, s)."""
        w = self.pos_bias
        mean = w.mean(dim=(2, 3), keepdim=True)
        # (1e-12 under the root: equal biases, e.g. zeros, give w = beta, where the paper's 0/0 gave NaN even at
        # gamma = 0; 1e-8 of the std of the default initialisation)
        std = (w.var(dim=(2, 3), keepdim=True, unbiased=False) + 1e-12).sqrt()
        w = self.gamma * (w - mean) / std + self.beta
        # (exp - 1 under torch.jit.trace: the TorchScript ONNX exporter has no expm1)
        k = torch.exp(w) - 1 if torch.jit.is_tracing() else torch.expm1(w)
        return k.repeat_interleave(self.channels // self.num_heads, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        q, k, v = self.qkv(x).chunk(3, dim=1)
        ek = torch.exp(k - k.detach().amax(dim=(2, 3), keepdim=True))
        both = torch.cat([ek * v, ek], dim=1)                        # numerator and denominator terms
        kernel = self.position_kernel()
        local = F.conv2d(both, torch.cat([kernel, kernel], dim=0), padding=self.kernel_size // 2,
                         groups=2 * self.channels)
        num, den = (local + both.sum(dim=(2, 3), keepdim=True)).chunk(2, dim=1)
        return torch.sigmoid(q) * (num / den)
