"""The MobileViT block, from MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision Transformer
(Mehta & Rastegari, ICLR 2022, arXiv 2110.02178).

Local representation: ``X_L = Conv1x1(Conv3x3(X))`` (C -> C -> d; the 3x3 with BN + SiLU, the 1x1 linear,
no bias).  Global representation: ``X_L`` is unfolded into ``N = HW / P`` non-overlapping ``p_h x p_w`` patches
and, for each of the ``P = p_h p_w`` pixel positions inside a patch, ``L`` pre-norm transformer layers attend
across the ``N`` patches (``X_G(p) = Transformer(X_U(p))``, Eq. 1), followed by a LayerNorm; the result is
folded back, projected ``d -> C`` (1x1, BN, SiLU), concatenated with the input and fused by a 3x3 conv
(2C -> C, BN, SiLU).  Each transformer layer is ``x + MHSA(LN(x))`` then ``x + FFN(LN(x))`` with a SiLU FFN,
as in the official ml-cvnets code; attention runs in ``F.scaled_dot_product_attention``.

Any H and W: the map is zero padded to a multiple of the patch size after the local representation, the
padded tokens are masked out of every attention (boolean ``attn_mask``) and the padded pixels are cropped
after folding, so the real pixels never see the padding.  (The official code resizes the map instead.)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvNormAct, DropPath, LayerType, Mlp, MultiHeadAttention, check_divisible, check_nchw, check_positive_int,
    crop_to, fold_patches, layout_like, pad_to_patches, to_2tuple, unfold_patches,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["MobileViTBlock", "TransformerLayer"]


class TransformerLayer(nn.Module):
    """Pre-norm transformer encoder layer with a SiLU FFN (MobileViT's), on (B, N, d) with an optional boolean
    key mask (True = attend)."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, act_layer: LayerType = "silu", drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = Mlp(dim, ffn_dim, act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), mask))
        return x + self.drop_path(self.ffn(self.norm2(x)))


@register_block("mobilevit_attention", family="attention", layout="nchw",
                paper="Mehta & Rastegari, MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision "
                      "Transformer, ICLR 2022",
                url="https://arxiv.org/abs/2110.02178",
                example=Example(args=(48,), kwargs={"transformer_dim": 64, "num_layers": 2, "num_heads": 4,
                                                    "patch_size": 2}, input_shape=(2, 48, 16, 16)))
@validated(kernel_size="odd")
class MobileViTBlock(nn.Module):
    """MobileViT block (local conv, transformers over unfolded patches, fold, fusion), on (B, C, H, W).

    Args:
        channels: input (= output) channels C.
        transformer_dim: d, the transformer width (MobileViT-XXS first block: 64 at C=48).
        ffn_dim: FFN hidden width (paper: 2d; default).
        num_layers: L transformer layers (2, 4, 3 in the three MobileViT stages).
        num_heads: attention heads; d must be divisible by it (paper: 4).
        patch_size: (p_h, p_w) (paper: 2x2).
        kernel_size: local convolution (paper: 3).
        act_layer: activation of the convolutions and the FFN (paper: SiLU).
        drop, attn_drop, drop_path: dropouts and stochastic depth in the transformer.
    """

    def __init__(self, channels: int, transformer_dim: int | None = None, ffn_dim: int | None = None,
                 num_layers: int = 2, num_heads: int = 4, patch_size=2, kernel_size: int = 3,
                 act_layer: LayerType = "silu", drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        d = check_positive_int("transformer_dim", transformer_dim if transformer_dim is not None else channels)
        ffn_dim = check_positive_int("ffn_dim", ffn_dim if ffn_dim is not None else 2 * d)
        check_positive_int("num_layers", num_layers)
        check_positive_int("num_heads", num_heads)
        check_divisible("transformer_dim", d, "num_heads", num_heads)
        self.patch_size = tuple(check_positive_int("patch_size", p) for p in to_2tuple(patch_size))
        self.conv_kxk = ConvNormAct(channels, channels, kernel_size, act_layer=act_layer)
        self.conv_1x1_in = nn.Conv2d(channels, d, 1, bias=False)
        self.layers = nn.ModuleList(TransformerLayer(d, ffn_dim, num_heads, act_layer, drop, attn_drop, drop_path)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(d)
        self.conv_proj = ConvNormAct(d, channels, 1, act_layer=act_layer)
        self.conv_fusion = ConvNormAct(2 * channels, channels, kernel_size, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        B, _, H, W = x.shape
        ph, pw = self.patch_size
        y, valid = pad_to_patches(self.conv_1x1_in(self.conv_kxk(x)), ph, pw)
        Hp, Wp = y.shape[-2:]
        mask = None
        if valid is not None:  # padded tokens may not be attended to
            mask = unfold_patches(valid, ph, pw, channels_last=True).reshape(ph * pw, 1, 1, -1)
            # a sequence made only of padding (H < p_h or W < p_w) attends to all of it: no NaN, and it is cropped
            mask = (mask | ~mask.any(-1, keepdim=True)).repeat(B, 1, 1, 1)
        t = unfold_patches(y, ph, pw, channels_last=True)     # (B P, N, d): P sequences over the N patches
        for layer in self.layers:
            t = layer(t, mask)
        y = crop_to(fold_patches(self.norm(t), Hp, Wp, ph, pw, channels_last=True), H, W)
        y = layout_like(y, x)  # the copy the projection makes anyway, in x's layout (so the concatenation keeps it)
        return self.conv_fusion(torch.cat([x, self.conv_proj(y)], dim=1))
