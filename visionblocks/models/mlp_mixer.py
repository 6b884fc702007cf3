"""MLP-Mixer (Tolstikhin et al., MLP-Mixer: An all-MLP Architecture for Vision, NeurIPS 2021, arXiv 2105.01601),
and :class:`IsotropicMLP`, the patch-embedding + N identical token-mixing blocks backbone that ResMLP and gMLP
share.

Mixer-S/16: 8 layers, C = 512, D_S = 256, D_C = 2048.  Mixer-B/16: 12 layers, C = 768, D_S = 384, D_C = 3072.
Patch 16 at 224 x 224 (196 tokens); final LayerNorm, global average pooling over tokens, linear head.
The token-mixing MLPs are tied to 196 tokens, so the models only run at 224 x 224.  Evaluated at 224 with crop
ratio 0.875, bicubic, mean = std = (0.5, 0.5, 0.5) (the authors' preprocessing, as in timm).

Features (``feature_info``): isotropic, one per block, all at the patch reduction (16), as (B, C, 14, 14) maps;
the first includes the patch embedding.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from visionblocks.blocks.mlp import MixerBlock
from visionblocks.features import FeatureInfo, tokens_to_nchw
from visionblocks.layers import to_2tuple
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase

__all__ = ["IsotropicMLP", "mixer_s16", "mixer_b16"]


class IsotropicMLP(ModelBase):
    """Non-overlapping patch embedding, ``depth`` blocks ``block_fn(dim, num_tokens, drop_path=...)`` on
    (B, N, C) tokens, a final norm, average pooling over tokens and a linear classifier.

    The blocks mix tokens with weights tied to N, so the model runs only at ``img_size``.

    Args:
        block_fn: builds each block, ``block_fn(dim, num_tokens, drop_path=...)``.
        dim, depth, patch_size: width, number of blocks, patch size.
        img_size: the one input size.
        num_classes, in_chans: classifier size (0 for none) and input channels.
        norm_layer: the final norm (LayerNorm, eps 1e-6).
        drop_rate, drop_path_rate: dropout before the classifier, stochastic depth of the blocks' residual
            branches (linear ramp).

    Features (``feature_info``): one per block, (B, C, H / p, W / p) maps at the patch reduction ``p``.
    """

    def __init__(self, block_fn: Callable[..., nn.Module], dim: int, depth: int, patch_size: int = 16,
                 img_size: int | tuple[int, int] = 224, num_classes: int = 1000, in_chans: int = 3,
                 norm_layer: Callable[[int], nn.Module] | None = None, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        self.img_size = to_2tuple(img_size)
        if self.img_size[0] % patch_size or self.img_size[1] % patch_size:
            raise ValueError(f"img_size {self.img_size} must be divisible by patch_size ({patch_size})")
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        num_tokens = self.grid_size[0] * self.grid_size[1]
        self.stem = nn.Conv2d(in_chans, dim, patch_size, patch_size)
        dpr = [drop_path_rate * i / max(1, depth - 1) for i in range(depth)]
        self.blocks = nn.Sequential(*[block_fn(dim, num_tokens, drop_path=dpr[i]) for i in range(depth)])
        self.norm = norm_layer(dim) if norm_layer is not None else nn.LayerNorm(dim, eps=1e-6)
        self.head = ClassifierHead(dim, num_classes, drop_rate)  # pools (B, N, C) tokens: mean over N
        self.num_features = dim
        self.feature_info = FeatureInfo([dict(num_chs=dim, reduction=patch_size, module=f"blocks.{i}")
                                         for i in range(depth)])
        self.feature_plan = [["stem", "to_tokens", "blocks.0"]] + [[f"blocks.{i}"] for i in range(1, depth)]

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(f"{type(self).__name__} is built for input size {self.img_size} (its token-mixing "
                             f"weights are tied to the token count); got input of shape {tuple(x.shape)}")

    def to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch-embedded map (B, C, h, w) -> tokens (B, h w, C)."""
        return x.flatten(2).transpose(1, 2)

    def feature_to_nchw(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return tokens_to_nchw(x, *self.grid_size)

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)

    head_fits_every_feature = True  # every block has the width of the norm and the classifier (as in timm)

    def final_norm_applies(self, index: int) -> bool:
        return True  # forward_intermediates(norm=True) normalises every block's tokens (timm)

    def prune_final(self) -> None:
        self.norm = nn.Identity()


_PAPER = "Tolstikhin et al., MLP-Mixer: An all-MLP Architecture for Vision, NeurIPS 2021"
_URL = "https://arxiv.org/abs/2105.01601"


def _mixer(dim, depth, num_classes, in_chans, **kwargs):
    return IsotropicMLP(lambda d, n, drop_path: MixerBlock(d, n, 0.5, 4.0, drop_path=drop_path), dim, depth, 16,
                        num_classes=num_classes, in_chans=in_chans, **kwargs)


_DATA = {"crop_pct": 0.875, "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


def _reg(name: str, params: float, macs: float):
    return register_model(name, paper=_PAPER, url=_URL, paper_params=params, paper_macs=macs,
                          data_cfg=_DATA)


@_reg("mixer_s16", 18.53, 3.8)
def mixer_s16(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> IsotropicMLP:
    """Mixer-S/16 at 224: 18.5M params (paper: 18M), 3.8 GMACs."""
    return _mixer(512, 8, num_classes, in_chans, **kwargs)


@_reg("mixer_b16", 59.88, 12.6)
def mixer_b16(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> IsotropicMLP:
    """Mixer-B/16 at 224: 59.9M params (paper: 59M), 12.6 GMACs."""
    return _mixer(768, 12, num_classes, in_chans, **kwargs)
