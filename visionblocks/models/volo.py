"""VOLO (Yuan et al., VOLO: Vision Outlooker for Visual Recognition, TPAMI 2022, arXiv 2106.13112).

VOLO-D1 (Table 2 of the paper, official code): a convolutional patch embedding (7x7/2, 3x3, 3x3 convs with BN
and ReLU, then a 4x4/4 projection: 8x8 patches, 28x28 tokens at 224), stage 1 of four Outlookers (``x + OA(LN(x))``,
``x + MLP(LN(x))`` with the ``outlook_attention`` block: 6 heads, 3x3 windows, stride 2, dim 192), a 2x2/2
downsampling conv to 384 channels and a learned 14x14 position embedding, then 4 + 8 + 2 transformer blocks
(12 heads, MLP ratio 3, no qkv bias), two class-attention blocks on a class token and the token-labelling head:
``logits = head(cls) + 0.5 * max_n aux_head(token_n)``.

At another input size the position embedding is bicubically interpolated to the token grid.  Evaluated at 224
with crop ratio 0.96, bicubic, ImageNet mean/std (the authors' configuration for VOLO-D1 at 224, sail-sg/volo).

Features (``feature_info``): one per stage, as (B, C, H, W) maps: the outlookers (reduction 8, with the stem) and
the three transformer stages (16; the first includes the downsampling and the position embedding).  The
transformer blocks run on channels-last maps (B, H, W, C) (attention over the H W tokens); the class token joins
after the last stage, in ``forward_features``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.blocks.attention import OutlookAttention, SelfAttention
from visionblocks.features import FeatureInfo
from visionblocks.layers import ConvNormAct, MetaFormerBlock, max_over, merge_heads, sdpa, split_heads
from visionblocks.layers.validate import check_int
from visionblocks.registry import register_model

from ._base import ModelBase, resolve_pool

__all__ = ["VOLO", "volo_d1"]


class Outlooker(MetaFormerBlock):
    """``x + OutlookAttention(LN(x))`` then ``x + MLP(LN(x))`` on (B, C, H, W) (normalised channels-last)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 3.0, drop_path: float = 0.0):
        super().__init__(dim, OutlookAttention(dim, num_heads, kernel_size=3, stride=2), mlp_ratio,
                         drop_path=drop_path)

    def mix_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TransformerBlock(MetaFormerBlock):
    """Pre-norm transformer block: multi-head self-attention without qkv bias, then the MLP; on (B, N, C) tokens
    or a channels-last map (B, H, W, C) (attention over its H W tokens)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 3.0, drop_path: float = 0.0):
        super().__init__(dim, SelfAttention(dim, num_heads, qkv_bias=False, proj_bias=True), mlp_ratio,
                         drop_path=drop_path)

    def mix_tokens(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # (B, H, W, C): attend over the H W tokens
            return self.attn(x.flatten(1, 2)).reshape(x.shape)
        return self.attn(x)


class ClassAttention(nn.Module):
    """Attention of the class token (query) over all tokens (keys/values), as in CaiT / VOLO."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.q = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, v = split_heads(self.kv(x), 2 * self.num_heads).chunk(2, dim=1)   # (B, heads, N, d) each
        q = split_heads(self.q(x[:, :1]), self.num_heads)                     # (B, heads, 1, d)
        return self.proj(merge_heads(sdpa(q, k, v)))


class ClassBlock(MetaFormerBlock):
    """Updates the class token only: ``cls + CA(LN(x))``, then ``cls + MLP(LN(cls))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 3.0, drop_path: float = 0.0):
        super().__init__(dim, ClassAttention(dim, num_heads), mlp_ratio, drop_path=drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = x[:, :1] + self.drop_path(self.attn(self.norm1(x)))
        cls = cls + self.drop_path(self.mlp(self.norm2(cls)))
        return torch.cat([cls, x[:, 1:]], dim=1)


class VOLO(ModelBase):
    """VOLO: outlooker stage, transformer stages, class-attention blocks and token-labelling head.

    Args:
        layers: blocks of the four stages (stage 1: outlookers).
        embed_dims, num_heads: per stage (downsampling between stage 1 and 2 only).
        mlp_ratio: MLP expansion (3).
        num_post: class-attention blocks (2).
        stem_hidden: channels of the convolutional stem (64).
        pos_size: the token grid the position embedding is built for (14 at 224x224).
        num_classes, in_chans: classifier size (0 for none) and input channels.
        global_pool: what the class head reads: ``"token"`` (the class token, VOLO) or ``"avg"`` (the mean of the
            patch tokens).  The token-labelling head adds half the maximum over the patch tokens of its scores.
        drop_rate, drop_path_rate: dropout before the heads, stochastic depth of the outlookers' and transformer
            blocks' residual branches (linear ramp; the class-attention blocks have none, as in VOLO).

    Features (``feature_info``): one per stage, at reductions 8, 16, 16, 16.
    """

    classifier = ("head", "aux_head")  # (both shaped by the class count: a checkpoint for 1000 classes drops both)
    step_modules = {"add_position": ("pos_embed",)}  # (pruned to the outlookers, the embedding goes)
    input_stem = ("stem", "downsample")  # 8 x 8 patches (7x7/2 stem), 2 x 2 merging: inputs of at least 15 x 15
    head_layouts = {3: (-1, "(B, 1 + N, C) tokens (the class token first)")}

    def __init__(self, layers=(4, 4, 8, 2), embed_dims=(192, 384, 384, 384), num_heads=(6, 12, 12, 12),
                 mlp_ratio: float = 3.0, num_post: int = 2, stem_hidden: int = 64, pos_size: int = 14,
                 num_classes: int = 1000, in_chans: int = 3, global_pool: str = "token", drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        self.global_pool = resolve_pool(global_pool, num_classes, pools=_POOLS, what="VOLO's global_pool")
        self.stem = nn.Sequential(ConvNormAct(in_chans, stem_hidden, 7, 2), ConvNormAct(stem_hidden, stem_hidden, 3),
                                  ConvNormAct(stem_hidden, stem_hidden, 3), nn.Conv2d(stem_hidden, embed_dims[0], 4, 4))
        total = sum(layers)
        dpr = [drop_path_rate * i / max(1, total - 1) for i in range(total)]
        self.outlookers = nn.Sequential(*[Outlooker(embed_dims[0], num_heads[0], mlp_ratio, dpr[i])
                                          for i in range(layers[0])])
        self.downsample = nn.Conv2d(embed_dims[0], embed_dims[1], 2, 2)
        dim = embed_dims[1]
        self.pos_embed = nn.Parameter(torch.randn(1, dim, pos_size, pos_size) * 0.02)
        blocks, idx = [], layers[0]
        for s in range(1, len(layers)):
            for _ in range(layers[s]):
                blocks.append(TransformerBlock(embed_dims[s], num_heads[s], mlp_ratio, dpr[idx]))
                idx += 1
        self.blocks = nn.Sequential(*blocks)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.post = nn.Sequential(*[ClassBlock(dim, num_heads[-1], mlp_ratio) for _ in range(num_post)])
        self.norm = nn.LayerNorm(dim)
        self.num_features = dim
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        self.aux_head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        ends = [sum(layers[1:s + 1]) for s in range(len(layers))]  # blocks before each transformer stage ends
        self.feature_plan = [["stem", "outlookers"], ["downsample", "add_position"]]
        self.feature_plan[1] += [f"blocks.{i}" for i in range(ends[1])]
        self.feature_plan += [[f"blocks.{i}" for i in range(ends[s - 1], ends[s])] for s in range(2, len(layers))]
        self.feature_info = FeatureInfo(
            [dict(num_chs=embed_dims[0], reduction=8, module="outlookers")] +
            [dict(num_chs=embed_dims[s], reduction=16, module=self.feature_plan[s][-1]) for s in range(1, len(layers))])

    def add_position(self, x: torch.Tensor) -> torch.Tensor:
        """Downsampled map (B, C, h, w) plus the position embedding (resized to h x w), as channels-last (B, h, w,
        C) for the transformer blocks."""
        pos = self.pos_embed
        if pos.shape[-2:] != x.shape[-2:]:
            pos = F.interpolate(pos, size=x.shape[-2:], mode="bicubic", align_corners=False)
        return (x + pos).permute(0, 2, 3, 1)

    def feature_to_nchw(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return x if index == 0 else x.permute(0, 3, 1, 2)  # the outlookers' output is already a map

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """The class token joins the tokens, the class-attention blocks update it, the final LayerNorm: (B, 1 + N,
        C) normalised tokens, the class token first."""
        x = x.flatten(2).transpose(1, 2) if self._num_stages() == 1 else x.flatten(1, 2)  # (pruned to the outlookers' map)
        if self.cls_token is not None:  # (None once the head is pruned)
            x = self.post(torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1))
        return self.norm(x)

    def final_norm_to_map(self, x: torch.Tensor) -> torch.Tensor:
        """The final LayerNorm on the last stage's map (no class token)."""
        return self.norm(x)

    def final_norm_applies(self, index: int) -> bool:
        return index >= 1  # the transformer stages (the norm's width); not the outlookers' map (as timm)

    def prune_final(self) -> None:
        self.post = nn.Identity()
        self.norm = nn.Identity()

    def prune_head(self) -> None:
        self.post, self.cls_token = nn.Identity(), None  # the class token and its class-attention blocks

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        self.check_head_input(x)
        if not self.global_pool:  # no pooling (num_classes=0): the tokens as forward_features gives them
            return x
        tokens = x if self.cls_token is None else x[:, 1:]
        pooled = x[:, 0] if self.global_pool == "token" else tokens.mean(dim=1)
        if pre_logits:
            return pooled
        out = self.head(self.head_drop(pooled))
        return out + 0.5 * max_over(self.aux_head(self.head_drop(tokens)), 1)   # max over tokens

    def set_global_pool(self, global_pool: str) -> None:
        """What the class head reads (``"token"``, ``"avg"`` or ``""``, see the constructor); heads kept."""
        self.global_pool = self._pool(global_pool, self.num_classes)

    def _pool(self, global_pool: str | None, num_classes: int) -> str:
        pool = resolve_pool(global_pool, num_classes, self.global_pool, _POOLS, "VOLO's global_pool")
        if pool == "token" and self.cls_token is None:
            raise ValueError("VOLO's class token was pruned with its head: global_pool must be 'avg' or ''")
        return pool

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New class and token-labelling heads for ``num_classes`` (0: none; ``forward`` then returns the pooled
        features plus half the maximum of the patch tokens, as timm's VOLO); ``global_pool``: ``"token"``,
        ``"avg"`` or ``""`` (no pooling: ``forward`` returns the tokens; ``num_classes=0`` only).  After
        pruning, the class token is gone: ``"avg"``."""
        check_int("num_classes", num_classes, low=0)
        self.global_pool = self._pool(global_pool, num_classes)
        ref = next(self.parameters())
        factory = {"device": ref.device, "dtype": ref.dtype}
        self.head = nn.Linear(self.num_features, num_classes, **factory) if num_classes > 0 else nn.Identity()
        self.aux_head = nn.Linear(self.num_features, num_classes, **factory) if num_classes > 0 else nn.Identity()


#: what VOLO's class head reads: the class token, the mean of the patch tokens, or nothing (no classifier)
_POOLS = ("token", "avg", "")


@register_model("volo_d1", paper="Yuan et al., VOLO: Vision Outlooker for Visual Recognition, TPAMI 2022",
                url="https://arxiv.org/abs/2106.13112", input_size=(3, 224, 224), paper_params=26.6, paper_macs=6.8,
                test_input_size=(32, 32), macs_rel_tol=0.02, data_cfg={"crop_pct": 0.96, "interpolation": "bicubic"})
def volo_d1(**kwargs) -> VOLO:
    """VOLO-D1: 27 M params (26.6 M exactly), 6.8 GFLOPs at 224x224 (paper; we count 6.92 G, see paper_note)."""
    return VOLO((4, 4, 8, 2), (192, 384, 384, 384), (6, 12, 12, 12), **kwargs)
