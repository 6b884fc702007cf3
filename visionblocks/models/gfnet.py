"""GFNet: Global Filter Networks for Image Classification (Rao et al., NeurIPS 2021, arXiv 2107.00645).

The isotropic GFNet: 16x16 patch embedding, learned absolute position embedding, then ``depth`` blocks
``x + MLP(LN(GlobalFilter(LN(x))))`` (one residual around filter and MLP, as in the authors' code
raoyongming/GFNet; MLP ratio 4, GELU, LayerNorm eps 1e-6), a final LayerNorm, the mean over tokens and a
linear classifier.  The global filters (``visionblocks.blocks.attention.global_filter``) and the position
embedding are built for 224 / 16 = 14 x 14 tokens (filters 14 x 8); at other sizes both are resized to the
token grid (filters: bicubic, align_corners=True; position embedding: bicubic), as GFNet does when it
fine-tunes at another resolution.  Tokens are kept channels-last (B, H, W, C).  Evaluated at 224 with crop ratio
0.875, bicubic, ImageNet mean/std (the authors' code).

Features (``feature_info``): isotropic, one per block, all at the patch reduction (16), as (B, C, H / 16, W / 16)
maps; the first includes the patch and position embeddings.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.blocks.attention import GlobalFilter
from visionblocks.features import FeatureInfo
from visionblocks.layers import DropPath, Mlp, init_weights, is_plain, resize_bicubic
from visionblocks.registry import register_model

from ._base import ChannelsLastModel, ClassifierHead

__all__ = ["GFNet", "GFNetBlock", "gfnet_ti", "gfnet_xs", "gfnet_s"]

_PAPER = "Rao et al., Global Filter Networks for Image Classification, NeurIPS 2021"
_URL = "https://arxiv.org/abs/2107.00645"
_DATA = {"crop_pct": 0.875, "interpolation": "bicubic"}  # ImageNet mean/std (raoyongming/GFNet)


class GFNetBlock(nn.Module):
    """``x + MLP(LN(GlobalFilter(LN(x))))`` on channels-last tokens (B, H, W, C)."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, h: int = 14, w: int = 8, drop: float = 0.0,
                 drop_path: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.filter = GlobalFilter(dim, h=h, w=w)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden, act_layer="gelu", drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def mix_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The global filter on (B, H, W, C) tokens: its channels-last form, or the block called on the
        (B, C, H, W) view when it is hooked or replaced."""
        if is_plain(self.filter, GlobalFilter):
            return self.filter.forward_nhwc(x)
        return self.filter(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.mlp(self.norm2(self.mix_tokens(self.norm1(x)))))


class GFNet(ChannelsLastModel):
    """Isotropic GFNet.

    Args:
        embed_dim, depth, mlp_ratio: the configuration (Ti: 256/12, XS: 384/12, S: 384/19).
        patch_size: 16.
        grid_size: the token grid the filters and position embedding are built for (224 / 16 = 14).
        num_classes, in_chans: classifier size (0 for none) and input channels.
        drop_rate, drop_path_rate: dropout (after the position embedding and in the MLPs, as the authors' code)
            and stochastic depth of the residual branches (linear ramp).

    Features (``feature_info``): one per block, (B, C, H / 16, W / 16) maps.
    """

    input_stem = ("patch_embed",)  # 16 x 16 patches: inputs of at least 16 x 16

    def __init__(self, embed_dim: int = 384, depth: int = 12, mlp_ratio: float = 4.0, patch_size: int = 16,
                 grid_size: int = 14, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        self.num_features = embed_dim
        self.grid_size = grid_size
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid_size * grid_size, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [drop_path_rate * i / max(1, depth - 1) for i in range(depth)]
        self.blocks = nn.Sequential(*[GFNetBlock(embed_dim, mlp_ratio, grid_size, grid_size // 2 + 1, drop_rate, dpr[i])
                                      for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = ClassifierHead(embed_dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        init_weights(self, conv=None, linear="trunc_normal", std=0.02)
        self.feature_info = FeatureInfo([dict(num_chs=embed_dim, reduction=patch_size, module=f"blocks.{i}")
                                         for i in range(depth)])
        self.feature_plan = [["patch_embed", "add_position", "pos_drop", "blocks.0"]] + \
            [[f"blocks.{i}"] for i in range(1, depth)]

    def position_embedding(self, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
        """The position embedding for an (h, w) token grid, (1, h, w, C) (bicubic resize when not 14 x 14)."""
        g = self.grid_size
        pos = self.pos_embed.to(dtype).reshape(1, g, g, -1)
        return resize_bicubic(pos.permute(0, 3, 1, 2), (h, w)).permute(0, 2, 3, 1)

    def add_position(self, x: torch.Tensor) -> torch.Tensor:
        """Patch-embedded map (B, C, h, w) -> channels-last tokens (B, h, w, C) plus the position embedding."""
        x = x.permute(0, 2, 3, 1)
        return x + self.position_embedding(x.shape[1], x.shape[2], x.dtype)


@register_model("gfnet_ti", paper=_PAPER, url=_URL, data_cfg=_DATA, paper_params=7.51, paper_macs=1.3, test_input_size=(64, 64))
def gfnet_ti(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> GFNet:
    """GFNet-Ti: embed 256, depth 12.  Paper: 7 M params (truncated; 7.51 M by
    its architecture), 1.3 GFLOPs at 224 (ours: 7.51 M, 1.27 GMACs without the FFTs)."""
    return GFNet(embed_dim=256, depth=12, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("gfnet_xs", paper=_PAPER, url=_URL, paper_params=16.0, paper_macs=2.9, test_input_size=(64, 64),
                macs_rel_tol=0.025, data_cfg=_DATA)
def gfnet_xs(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> GFNet:
    """GFNet-XS: embed 384, depth 12.  Paper: 16 M params, 2.9 GFLOPs at 224
    (ours: 15.99 M, 2.83 GMACs without the FFTs)."""
    return GFNet(embed_dim=384, depth=12, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("gfnet_s", paper=_PAPER, url=_URL, paper_params=25.0, paper_macs=4.5, test_input_size=(64, 64),
                macs_rel_tol=0.015, data_cfg=_DATA)
def gfnet_s(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> GFNet:
    """GFNet-S: embed 384, depth 19.  Paper: 25 M params, 4.5 GFLOPs at 224
    (ours: 24.87 M, 4.45 GMACs without the FFTs)."""
    return GFNet(embed_dim=384, depth=19, num_classes=num_classes, in_chans=in_chans, **kwargs)
