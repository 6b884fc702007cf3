"""Separable self-attention and the MobileViTv2 block, from Separable Self-attention for Mobile Vision
Transformers (Mehta & Rastegari, TMLR 2023, arXiv 2206.02680).

Separable self-attention (Sec. 3.2, Fig. 4c) on the ``k`` tokens of each patch position: a linear branch
``I`` maps every token to one scalar, ``c_s = softmax(x W_I)`` over the ``k`` tokens (context scores), the
context vector is ``c_v = sum_i c_s(i) (x_i W_K)``, and the output is ``y = (ReLU(x W_V) * c_v) W_O`` (the
context vector broadcast to every token): linear in ``k``.

The MobileViTv2 block (Sec. 3.3, the official ml-cvnets code): depth-wise 3x3 conv (BN, SiLU), linear 1x1
``C -> d`` (no bias); unfold into ``p_h x p_w`` patches, giving a (B, d, P, N) map; ``L`` pre-norm layers
``x + SepAttn(GN(x))``, ``x + FFN(GN(x))`` (``GN`` = GroupNorm with one group, FFN = 1x1 ``d -> 2d`` SiLU
1x1 ``2d -> d``), a final GN; fold back and project ``d -> C`` with a 1x1 conv and BN (no activation, no
fusion with the input, unlike MobileViTv1).

Any H and W: the map is zero padded to a multiple of the patch size after the local representation; the
padded tokens are excluded from the context-score softmax (``-inf`` logits) and from the GroupNorm
statistics (masked mean and variance), and the padded pixels are cropped after folding, so the real pixels
never see the padding.  (The official code resizes the map instead.)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (
    ConvMlp, ConvNormAct, DropPath, GroupNorm1, LayerType, check_nchw, check_positive_int, crop_to, fold_patches,
    is_plain, layout_like, pad_to_patches, to_2tuple, unfold_patches,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["MobileViTv2Block", "SeparableSelfAttention", "LinearTransformerLayer", "MaskedGroupNorm1"]


class MaskedGroupNorm1(GroupNorm1):
    """GroupNorm with one group over (C, P, N) whose statistics skip the positions where ``mask`` is False."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return super().forward(x)
        m = mask.to(x.dtype)
        count = m.sum() * x.shape[1]
        mean = (x * m).sum((1, 2, 3), keepdim=True) / count
        var = ((x - mean).square() * m).sum((1, 2, 3), keepdim=True) / count
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class SeparableSelfAttention(nn.Module):
    """Separable self-attention on a (B, d, P, N) map: attention over the N tokens of each of the P sequences.

    ``mask`` (1, 1, P, N), True for real tokens, excludes padded tokens from the context scores.
    """

    def __init__(self, dim: int, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.dim = dim
        self.qkv = nn.Conv2d(dim, 1 + 2 * dim, 1)  # [W_I | W_K | W_V]
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        i, k, v = self.qkv(x).split([1, self.dim, self.dim], dim=1)
        if mask is not None:
            # the most negative finite value, not -inf: a sequence made only of padding (H < p_h or W < p_w)
            # then gets uniform scores instead of NaN (it is cropped); elsewhere padded tokens get exactly 0
            i = i.masked_fill(~mask, torch.finfo(i.dtype).min)
        scores = self.attn_drop(torch.softmax(i, dim=-1))          # (B, 1, P, N)
        if torch.is_grad_enabled() or not is_plain(self.qkv, nn.Conv2d):
            context = (k * scores).sum(-1, keepdim=True)             # (B, d, P, 1)
            return self.proj_drop(self.proj(F.relu(v) * context))
        # without autograd, k and v (views of the projection's output, used once; no hook holds it) are
        # overwritten in place
        context = k.mul_(scores).sum(-1, keepdim=True)
        return self.proj_drop(self.proj(v.relu_().mul_(context)))


class LinearTransformerLayer(nn.Module):
    """``x + SepAttn(GN(x))`` then ``x + FFN(GN(x))`` on (B, d, P, N)."""

    def __init__(self, dim: int, ffn_dim: int, act_layer: LayerType = "silu", drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = MaskedGroupNorm1(dim)
        self.attn = SeparableSelfAttention(dim, attn_drop, drop)
        self.norm2 = MaskedGroupNorm1(dim)
        self.ffn = ConvMlp(dim, ffn_dim, act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x, mask), mask))
        return x + self.drop_path(self.ffn(self.norm2(x, mask)))


@register_block("mobilevitv2_attention", family="attention", layout="nchw",
                paper="Mehta & Rastegari, Separable Self-attention for Mobile Vision Transformers, TMLR 2023",
                url="https://arxiv.org/abs/2206.02680",
                example=Example(args=(64,), kwargs={"transformer_dim": 32, "num_layers": 2, "patch_size": 2},
                                input_shape=(2, 64, 16, 16)))
@validated(kernel_size="odd")
class MobileViTv2Block(nn.Module):
    """MobileViTv2 block with separable self-attention, on (B, C, H, W).

    Args:
        channels: input (= output) channels C.
        transformer_dim: d (paper: ``C / 2`` in every stage, e.g. 128 at C=256 for MobileViTv2-1.0; default).
        ffn_dim: FFN hidden width (paper: 2d; default).
        num_layers: L (2, 4, 3 in the three stages).
        patch_size: (p_h, p_w) (paper: 2x2).
        kernel_size: depth-wise local convolution (paper: 3).
        act_layer: activation of the local conv and the FFN (paper: SiLU).
        drop, attn_drop, drop_path: dropouts and stochastic depth.
    """

    def __init__(self, channels: int, transformer_dim: int | None = None, ffn_dim: int | None = None,
                 num_layers: int = 2, patch_size=2, kernel_size: int = 3, act_layer: LayerType = "silu",
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        d = check_positive_int("transformer_dim", transformer_dim if transformer_dim is not None else max(1, channels // 2))
        ffn_dim = check_positive_int("ffn_dim", ffn_dim if ffn_dim is not None else 2 * d)
        check_positive_int("num_layers", num_layers)
        self.patch_size = tuple(check_positive_int("patch_size", p) for p in to_2tuple(patch_size))
        self.conv_kxk = ConvNormAct(channels, channels, kernel_size, groups=channels, act_layer=act_layer)
        self.conv_1x1_in = nn.Conv2d(channels, d, 1, bias=False)
        self.layers = nn.ModuleList(LinearTransformerLayer(d, ffn_dim, act_layer, drop, attn_drop, drop_path)
                                    for _ in range(num_layers))
        self.norm = MaskedGroupNorm1(d)
        self.conv_proj = ConvNormAct(d, channels, 1, act_layer=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        _, _, H, W = x.shape
        ph, pw = self.patch_size
        y, valid = pad_to_patches(self.conv_1x1_in(self.conv_kxk(x)), ph, pw)
        Hp, Wp = y.shape[-2:]
        mask = None if valid is None else unfold_patches(valid, ph, pw)
        t = unfold_patches(y, ph, pw)     # (B, d, P, N): attention over the N patches for each of the P positions
        for layer in self.layers:
            t = layer(t, mask)
        y = crop_to(fold_patches(self.norm(t, mask), Hp, Wp, ph, pw), H, W)
        return self.conv_proj(layout_like(y, x))  # the copy the projection makes anyway, in x's layout
