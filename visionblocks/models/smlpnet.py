"""sMLPNet (Tang et al., Sparse MLP for Image Recognition: Is Self-Attention Really Necessary?, AAAI 2022,
arXiv 2109.05422).

4x4 patch embedding (conv, no bias) to C channels, four stages at 56, 28, 14, 7 (2x2 stride-2 conv merging
between them, doubling the channels), each block being::

    x = x + sMLP(DWConv_3x3(GELU(BN(x))))         # token mixing (sMLP block: BN, GELU, axial MLPs, fuse)
    x = x + FFN(LN(x))                            # channel mixing, hidden 3C

then BatchNorm, global average pooling and a linear head (as the authors' code, microsoft/SPACH).
sMLPNet-T: C = 80, depths (2, 8, 14, 2); -S: C = 96, (2, 10, 24, 2); -B: C = 112, (2, 10, 24, 2).  Paper
(Table 5): 24.1M / 48.6M / 65.9M params, 5.0 / 10.3 / 14.0 GFLOPs at 224.  The sMLP weights are tied to the
stage sizes, so the models run only at 224 x 224.  Evaluated at 224 with crop ratio 0.875, bicubic, ImageNet
mean/std (the authors' code).

Features (``feature_info``): one per stage (after its last block) at reductions 4, 8, 16, 32; the first includes
the patch embedding, each later one its patch merging.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.blocks.mlp import SparseMLPBlock
from visionblocks.features import FeatureInfo
from visionblocks.layers import DropPath, Mlp
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase

__all__ = ["SMLPNet", "SMLPNetBlock", "smlpnet_t", "smlpnet_s", "smlpnet_b"]

_PAPER = "Tang et al., Sparse MLP for Image Recognition: Is Self-Attention Really Necessary?, AAAI 2022"
_URL = "https://arxiv.org/abs/2109.05422"
_DATA = {"crop_pct": 0.875, "interpolation": "bicubic"}  # ImageNet mean/std (microsoft/SPACH)


class SMLPNetBlock(nn.Module):
    """Token mixing (BN-GELU-DWConv3x3, then the sMLP block) and channel mixing (LN + FFN), each residual."""

    def __init__(self, dim: int, size: int, mlp_ratio: float = 3.0, drop_path: float = 0.0):
        super().__init__()
        self.dw_norm = nn.BatchNorm2d(dim)
        self.dw_act = nn.GELU()
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        self.smlp = SparseMLPBlock(dim, (size, size))
        self.norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.smlp(self.dw(self.dw_act(self.dw_norm(x)))))
        y = self.mlp(self.norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return x + self.drop_path(y)


class SMLPNet(ModelBase):
    """Four stages of :class:`SMLPNetBlock` with 2x2 patch merging between them.

    Args:
        dim, depths: width of the first stage (doubled at each merging) and blocks per stage.
        mlp_ratio: hidden width of the channel MLPs (3).
        patch_size, img_size: patch embedding and the one input size.
        num_classes, in_chans: classifier size (0 for none) and input channels.
        drop_rate, drop_path_rate: dropout before the classifier, stochastic depth of the residual branches
            (linear ramp).

    Features (``feature_info``): one per stage, at reductions ``patch_size * 2 ** i``.
    """

    def __init__(self, dim: int = 80, depths=(2, 8, 14, 2), mlp_ratio: float = 3.0, patch_size: int = 4,
                 img_size: int = 224, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        self.img_size = (img_size, img_size)
        size = img_size // patch_size
        total, k = sum(depths), 0
        layers = [nn.Conv2d(in_chans, dim, patch_size, patch_size, bias=False)]
        features, plan = [], []
        for i, n in enumerate(depths):
            d = dim * 2 ** i
            start = len(layers)
            if i > 0:
                layers.append(nn.Conv2d(d // 2, d, 2, 2, bias=False))
                size //= 2
            for _ in range(n):
                layers.append(SMLPNetBlock(d, size, mlp_ratio, drop_path_rate * k / max(1, total - 1)))
                k += 1
            plan.append([f"features.{j}" for j in range(0 if i == 0 else start, len(layers))])
            features.append(dict(num_chs=d, reduction=patch_size * 2 ** i, module=plan[-1][-1]))
        self.features = nn.Sequential(*layers)
        self.num_features = dim * 2 ** (len(depths) - 1)
        self.norm = nn.BatchNorm2d(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        self.feature_info = FeatureInfo(features)
        self.feature_plan = plan

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(f"{type(self).__name__} is built for input size {self.img_size} (its sparse MLPs "
                             f"are tied to the stage sizes); got input of shape {tuple(x.shape)}")

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """The final BatchNorm."""
        return self.norm(x)

    def prune_final(self) -> None:
        self.norm = nn.Identity()


@register_model("smlpnet_t", paper=_PAPER, url=_URL, paper_params=24.1, paper_macs=5.0, data_cfg=_DATA)
def smlpnet_t(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> SMLPNet:
    """sMLPNet-T at 224: 24.1M params, 5.0 GFLOPs (paper)."""
    return SMLPNet(80, (2, 8, 14, 2), num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("smlpnet_s", paper=_PAPER, url=_URL, paper_params=48.6, paper_macs=10.3, data_cfg=_DATA)
def smlpnet_s(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> SMLPNet:
    """sMLPNet-S at 224: 48.6M params, 10.3 GFLOPs (paper)."""
    return SMLPNet(96, (2, 10, 24, 2), num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("smlpnet_b", paper=_PAPER, url=_URL, paper_params=65.9, paper_macs=14.0, data_cfg=_DATA)
def smlpnet_b(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> SMLPNet:
    """sMLPNet-B at 224: 65.9M params, 14.0 GFLOPs (paper)."""
    return SMLPNet(112, (2, 10, 24, 2), num_classes=num_classes, in_chans=in_chans, **kwargs)
