"""Vision Permutator (Hou et al., Vision Permutator: A Permutable MLP-Like Architecture for Visual Recognition,
TPAMI 2022, arXiv 2106.12368).

ViP-S/7: 7x7 patch embedding to 192 channels (32 x 32 tokens at 224), 4 Permutator blocks, a 2x2 stride-2
downsampling to 384 channels (16 x 16), then 3 + 8 + 3 blocks.  A Permutator block is
``x + WeightedPermuteMLP(LN(x))`` then ``x + MLP(LN(x))`` (MLP ratio 3); final LayerNorm, average pooling,
linear head.  Paper (Table 2): 25M params, 6.9 GFLOPs at 224.  The permute-MLPs are tied to the token grid,
so the model runs only at 224 x 224.  Evaluated at 224 with crop ratio 0.9, bicubic, ImageNet mean/std (the
authors' configuration for ViP-S, Andrew-Qibin/VisionPermutator).

Features (``feature_info``): one per stage (after its last block), as (B, C, H, W) maps: ViP-S/7 at reductions
7, 14, 14, 14; the first includes the patch embedding, the second the downsampling.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.blocks.mlp import WeightedPermuteMLP
from visionblocks.features import FeatureInfo
from visionblocks.layers import MetaFormerBlock, is_plain
from visionblocks.registry import register_model

from ._base import ChannelsLastModel, ClassifierHead

__all__ = ["VisionPermutator", "PermutatorBlock", "vip_s7"]


class PermutatorBlock(MetaFormerBlock):
    """Pre-LN weighted permute-MLP and channel MLP with skips, on channels-last (B, H, W, C) maps."""

    def __init__(self, dim: int, size: int, mlp_ratio: float = 3.0, drop_path: float = 0.0):
        super().__init__(dim, WeightedPermuteMLP(dim, size), mlp_ratio, drop_path=drop_path)

    def mix_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The weighted permute-MLP on (B, H, W, C) tokens: its channels-last form, or the block called on the
        (B, C, H, W) view when it is hooked or replaced (layers.is_plain)."""
        if is_plain(self.attn, WeightedPermuteMLP):
            return self.attn.forward_nhwc(x)
        return self.attn(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class VisionPermutator(ChannelsLastModel):
    """Stages of Permutator blocks; ``downsample[i]`` puts a 2x2 stride-2 conv after stage i.

    Args:
        layers, dims: blocks and channels of each stage.
        downsample: whether a 2x2 stride-2 patch merging follows each stage (a 1x1 conv changes the width where
            the next stage's differs without downsampling).
        patch_size, img_size: patch embedding and the one input size.
        mlp_ratio: hidden width of the channel MLPs.
        num_classes, in_chans: classifier size (0 for none) and input channels.
        drop_rate, drop_path_rate: dropout before the classifier, stochastic depth of the residual branches
            (linear ramp).

    Features (``feature_info``): one per stage, (B, C, H, W) maps.
    """

    def __init__(self, layers=(4, 3, 8, 3), dims=(192, 384, 384, 384), downsample=(True, False, False, False),
                 patch_size: int = 7, img_size: int = 224, mlp_ratio: float = 3.0, num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        self.img_size = (img_size, img_size)
        size = img_size // patch_size
        self.stem = nn.Conv2d(in_chans, dims[0], patch_size, patch_size)
        total, k = sum(layers), 0
        stages, features, plan, steps, reduction = [], [], [], ["stem", "to_nhwc"], patch_size
        for i, n in enumerate(layers):
            blocks = []
            for _ in range(n):
                blocks.append(PermutatorBlock(dims[i], size, mlp_ratio, drop_path_rate * k / max(1, total - 1)))
                k += 1
            steps.append(f"stages.{len(stages)}")
            stages.append(nn.Sequential(*blocks))
            features.append(dict(num_chs=dims[i], reduction=reduction, module=steps[-1]))
            plan.append(steps)
            steps = []
            if i < len(layers) - 1 and (downsample[i] or dims[i] != dims[i + 1]):
                stride = 2 if downsample[i] else 1
                steps.append(f"stages.{len(stages)}")
                stages.append(_ChannelsLastConv(dims[i], dims[i + 1], stride))
                size //= stride
                reduction *= stride
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1])
        self.head = ClassifierHead(dims[-1], num_classes, drop_rate)
        self.num_features = dims[-1]
        self.feature_info = FeatureInfo(features)
        self.feature_plan = plan

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(f"{type(self).__name__} is built for input size {self.img_size} (its permute-MLPs "
                             f"are tied to the token grid); got input of shape {tuple(x.shape)}")

    def to_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """Patch-embedded map (B, C, H, W) -> channels-last (B, H, W, C), the layout of the blocks."""
        return x.permute(0, 2, 3, 1)


class _ChannelsLastConv(nn.Module):
    """A k x k stride-k convolution (patch merging) on a channels-last map."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, stride, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


@register_model("vip_s7", paper="Hou et al., Vision Permutator: A Permutable MLP-Like Architecture for Visual "
                                "Recognition, TPAMI 2022",
                url="https://arxiv.org/abs/2106.12368", paper_params=25.0, paper_macs=6.9,
                data_cfg={"crop_pct": 0.9, "interpolation": "bicubic"})
def vip_s7(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VisionPermutator:
    """ViP-Small/7 at 224: 25M params, 6.9 GFLOPs (paper Table 2)."""
    return VisionPermutator((4, 3, 8, 3), (192, 384, 384, 384), (True, False, False, False), 7,
                            num_classes=num_classes, in_chans=in_chans, **kwargs)
