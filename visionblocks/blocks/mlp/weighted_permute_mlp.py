"""Vision Permutator weighted permute-MLP (Hou et al., Vision Permutator: A Permutable MLP-Like Architecture
for Visual Recognition, TPAMI 2022, arXiv 2106.12368).

For an (H, W, C) token map, the height branch splits the C channels into H segments of ``N = C / H``
channels and permutes the height axis with the segment axis, so that a plain C -> C linear layer mixes
the H positions of a column (its input is the (H x N) block of one segment); the width branch does the
same with W segments along W; the channel branch is a C -> C linear layer (paper, Sec. 3.2)::

    X_H = P_H^-1(P_H(X) W_H),  X_W = P_W^-1(P_W(X) W_W),  X_C = X W_C
    a = softmax_over_branches(MLP(mean_positions(X_H + X_W + X_C)))   # split attention, MLP C -> C/4 -> 3C
    Y = (a_H X_H + a_W X_W + a_C X_C) W_P

The permutation needs ``C = H * N`` (and ``C = W * N'``), so the weights are tied to the spatial size by
design (the paper sets the segment number equal to H = W); this block takes that size and rejects others.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    LayerType, Mlp, check_divisible, check_nchw, check_positive_int, check_size, is_channels_last, reduced_channels,
    to_2tuple, token_linear,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["WeightedPermuteMLP"]


@register_block("weighted_permute_mlp", family="mlp", layout="nchw", fixed_size=True, aliases=("vip",),
                paper="Hou et al., Vision Permutator: A Permutable MLP-Like Architecture for Visual Recognition, "
                      "TPAMI 2022",
                url="https://arxiv.org/abs/2106.12368",
                example=Example(args=(48, (8, 8)), input_shape=(2, 48, 8, 8)))
@validated()
class WeightedPermuteMLP(nn.Module):
    """Permute-MLP along H, along W and over channels, fused with a split attention, then projected.

    Args:
        channels: C; must be divisible by H and by W (the segment counts).
        size: (H, W) the permutations are built for (fixed by design; ViP-S/7: 32 then 16).
        qkv_bias: bias of the three branch projections (paper code: False).
        reduction: the re-weighting MLP is ``C // reduction`` wide (at least 1; paper: 4).
        rd_channels: explicit width of the re-weighting MLP (overrides ``reduction``).
        act_layer: activation of the re-weighting MLP (paper: GELU).
    """

    def __init__(self, channels: int, size: int | tuple[int, int] = (8, 8), qkv_bias: bool = False,
                 reduction: int = 4, rd_channels: int | None = None, act_layer: LayerType = "gelu"):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.size = tuple(check_positive_int("size", s) for s in to_2tuple(size))
        h, w = self.size
        check_divisible("channels", channels, "the height H (number of height segments)", h)
        check_divisible("channels", channels, "the width W (number of width segments)", w)
        self.mlp_h = nn.Linear(channels, channels, bias=qkv_bias)
        self.mlp_w = nn.Linear(channels, channels, bias=qkv_bias)
        self.mlp_c = nn.Linear(channels, channels, bias=qkv_bias)
        self.reweight = Mlp(channels, reduced_channels(channels, reduction, rd_channels), 3 * channels,
                            act_layer=act_layer)
        self.proj = nn.Linear(channels, channels)

    def _permute_mlp_h(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, H, W, C) -> segments (B, H, W, H_seg, N); swap H and the segment axis, mix (H x N), swap back
        b, h, w, c = x.shape
        n = c // h
        t = x.reshape(b, h, w, h, n).permute(0, 3, 2, 1, 4).reshape(b, h, w, c)
        t = self.mlp_h(t).reshape(b, h, w, h, n).permute(0, 3, 2, 1, 4)
        return t.reshape(b, h, w, c)

    def _permute_mlp_w(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        n = c // w
        t = x.reshape(b, h, w, w, n).transpose(2, 3).reshape(b, h, w, c)
        t = self.mlp_w(t).reshape(b, h, w, w, n).transpose(2, 3)
        return t.reshape(b, h, w, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        check_size(x, self.size, type(self).__name__)
        if is_channels_last(x):  # its (B, H, W, C) view is contiguous, and the result keeps that layout
            return self.forward_nhwc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        # NCHW: the last projection written channels-first, W y^T + b (the same products, no transposing copy)
        y = self._weighted_sum(x.permute(0, 2, 3, 1))
        return token_linear(y.flatten(1, 2).transpose(1, 2), self.proj).unflatten(2, x.shape[2:])

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """The same on a channels-last (B, H, W, C) tensor (what ViP's stages carry), without checks."""
        return self.proj(self._weighted_sum(x))

    def _weighted_sum(self, x: torch.Tensor) -> torch.Tensor:
        """The three branches on (B, H, W, C), summed with their split-attention weights (before ``proj``)."""
        xh, xw, xc = self._permute_mlp_h(x), self._permute_mlp_w(x), self.mlp_c(x)
        a = (xh + xw + xc).mean((1, 2))                               # (B, C)
        a = self.reweight(a).unflatten(-1, (self.channels, 3)).softmax(-1)  # (B, C, 3)
        a = a[:, None, None]                                          # (B, 1, 1, C, 3)
        return xh * a[..., 0] + xw * a[..., 1] + xc * a[..., 2]
