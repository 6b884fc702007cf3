"""gMLP for image classification (Liu et al., Pay Attention to MLPs, NeurIPS 2021, arXiv 2105.08050).

Patch 16 at 224 x 224 (196 tokens), 30 gMLP blocks with d_ffn = 6 d (gMLP-Ti: d = 128, gMLP-S: 256,
gMLP-B: 512), final LayerNorm, average pooling over tokens, linear head.  Paper (Table 2): gMLP-Ti 6M params
1.4 GFLOPs, gMLP-S 20M 4.5 GFLOPs, gMLP-B 73M 15.8 GFLOPs.
Evaluated at 224 with crop ratio 0.875, bicubic, ImageNet mean/std (the DeiT recipe the paper trains with).
Features: one per block at reduction 16, as :class:`~visionblocks.models.mlp_mixer.IsotropicMLP`.
``sgu_eps`` sets the spatial gating unit's LayerNorm epsilon (default 1e-6; timm's gMLP uses 1e-5).
"""
from __future__ import annotations

from visionblocks.blocks.mlp import GMLPBlock
from visionblocks.registry import register_model

from .mlp_mixer import IsotropicMLP

__all__ = ["gmlp_ti16", "gmlp_s16", "gmlp_b16"]

_PAPER = "Liu et al., Pay Attention to MLPs, NeurIPS 2021"
_URL = "https://arxiv.org/abs/2105.08050"
_DATA = {"crop_pct": 0.875, "interpolation": "bicubic"}  # ImageNet mean/std


def _gmlp(dim, num_classes, in_chans, sgu_eps: float = 1e-6, **kwargs):
    """``sgu_eps``: the spatial gating unit's LayerNorm epsilon (ours 1e-6 as every norm; timm's gMLP: 1e-5,
    which its checkpoints need to give timm's output exactly)."""
    block = lambda d, n, drop_path: GMLPBlock(d, n, 6.0, drop_path=drop_path, sgu_eps=sgu_eps)  # noqa: E731
    return IsotropicMLP(block, dim, 30, 16, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("gmlp_ti16", paper=_PAPER, url=_URL, data_cfg=_DATA, paper_params=5.87, paper_macs=1.4,
                macs_rel_tol=0.06)
def gmlp_ti16(num_classes: int = 1000, in_chans: int = 3, **kwargs):
    """gMLP-Ti at 224: 5.87M params (paper: 6M), 1.33 GMACs (paper: 1.4 GFLOPs)."""
    return _gmlp(128, num_classes, in_chans, **kwargs)


@register_model("gmlp_s16", paper=_PAPER, url=_URL, data_cfg=_DATA, paper_params=19.42, paper_macs=4.5,
                macs_rel_tol=0.03)
def gmlp_s16(num_classes: int = 1000, in_chans: int = 3, **kwargs):
    """gMLP-S at 224: 19.42M params (paper: 20M), 4.39 GMACs (paper: 4.5 GFLOPs)."""
    return _gmlp(256, num_classes, in_chans, **kwargs)


@register_model("gmlp_b16", paper=_PAPER, url=_URL, data_cfg=_DATA, paper_params=73.0, paper_macs=15.8)
def gmlp_b16(num_classes: int = 1000, in_chans: int = 3, **kwargs):
    """gMLP-B at 224: 73M params, 15.8 GFLOPs (paper Table 2)."""
    return _gmlp(512, num_classes, in_chans, **kwargs)
