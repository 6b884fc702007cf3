"""ResMLP (Touvron et al., ResMLP: Feedforward networks for image classification with data-efficient training,
TPAMI 2022, arXiv 2105.03404).

Patch 16 at 224 x 224 (196 tokens), C = 384 (ResMLP-12/24/36: 12, 24, 36 blocks), MLP ratio 4, a final Affine
instead of LayerNorm, average pooling over patches, linear head.  LayerScale starts at 0.1 (depth 12), 1e-5
(24) and 1e-6 (36), as in the paper.  Paper (Table 3/official README): ResMLP-12 15M params 3.0 GFLOPs,
ResMLP-24 30M 6.0 GFLOPs, ResMLP-36 45M 8.9 GFLOPs.
Evaluated at 224 with crop ratio 0.875, bicubic, ImageNet mean/std (the DeiT recipe the paper trains with).
Features: one per block at reduction 16, as :class:`~visionblocks.models.mlp_mixer.IsotropicMLP`.
"""
from __future__ import annotations

from visionblocks.blocks.mlp import ResMLPBlock
from visionblocks.layers import Affine
from visionblocks.registry import register_model

from .mlp_mixer import IsotropicMLP

__all__ = ["resmlp_12", "resmlp_24", "resmlp_36"]

_PAPER = ("Touvron et al., ResMLP: Feedforward networks for image classification with data-efficient training, "
          "TPAMI 2022")
_URL = "https://arxiv.org/abs/2105.03404"
_DATA = {"crop_pct": 0.875, "interpolation": "bicubic"}  # ImageNet mean/std


def _resmlp(depth, init_values, num_classes, in_chans, **kwargs):
    block = lambda d, n, drop_path: ResMLPBlock(d, n, 4.0, init_values, drop_path=drop_path)  # noqa: E731
    return IsotropicMLP(block, 384, depth, 16, num_classes=num_classes, in_chans=in_chans, norm_layer=Affine, **kwargs)


@register_model("resmlp_12", paper=_PAPER, url=_URL, data_cfg=_DATA, paper_params=15.35, paper_macs=3.0)
def resmlp_12(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> IsotropicMLP:
    """ResMLP-12 at 224: 15.4M params (paper: 15M), 3.0 GMACs."""
    return _resmlp(12, 0.1, num_classes, in_chans, **kwargs)


@register_model("resmlp_24", paper=_PAPER, url=_URL, data_cfg=_DATA, paper_params=30.0, paper_macs=6.0)
def resmlp_24(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> IsotropicMLP:
    """ResMLP-24 at 224: 30M params, 6.0 GMACs."""
    return _resmlp(24, 1e-5, num_classes, in_chans, **kwargs)


@register_model("resmlp_36", paper=_PAPER, url=_URL, data_cfg=_DATA, paper_params=45.0, paper_macs=8.9)
def resmlp_36(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> IsotropicMLP:
    """ResMLP-36 at 224: 45M params (ours 44.7M), 8.9 GMACs."""
    return _resmlp(36, 1e-6, num_classes, in_chans, **kwargs)
