"""Contextual Transformer block (Li, Yao, Pan & Mei, Contextual Transformer Networks for Visual
Recognition, TPAMI 2022, arXiv 2107.12292).

Static context ``K1 = ReLU(BN(conv_kxk(x)))`` (a grouped k x k convolution over the keys, k = 3, 4
groups); values ``V = BN(W_v x)`` (1x1); a local attention matrix from the concatenated query and static
key, ``A = GN(W_delta ReLU(BN(W_theta [x; K1])))`` with ``W_theta: 2C -> C/2`` and
``W_delta: C/2 -> k^2 C/s`` (one k x k kernel per position for each of the C/s channel groups of the
"share planes" s = 8); dynamic context ``K2 = SiLU(BN(V (*) A))`` where ``(*)`` aggregates each value
channel c over its k x k neighbourhood with the weights of group ``c mod C/s``; the output fuses the two
contexts with split attention (radix 2): ``a = softmax_r(MLP(GAP(K1 + K2)))``, ``y = a_0 K2 + a_1 K1``.
Defaults follow the authors' code (JDAI-CV/CoTNet).  The block keeps the shape (stride 1); CoTNet
downsamples with a 3x3 average pool before the block (see ``visionblocks.models.cotnet``).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvNormAct, LayerType, check_divisible, check_nchw, check_odd, check_positive_int, create_act,
    deprecated_kwargs, is_channels_last, local_aggregate, pointwise_forward, reduced_channels, spatial_mean,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["ContextualTransformer"]


@register_block("cot", family="attention", layout="nchw",
                paper="Li et al., Contextual Transformer Networks for Visual Recognition, TPAMI 2022",
                url="https://arxiv.org/abs/2107.12292",
                example=Example(args=(64,), kwargs={"kernel_size": 3}, input_shape=(2, 64, 14, 14)))
@validated(pooled_bn="the attention fusion's BatchNorm on globally pooled features")
class ContextualTransformer(nn.Module):
    """CoT block: static (convolutional) plus dynamic (attention-weighted local) context.

    Two bottlenecks, each with its own width: the attention embedding ``W_theta`` (``embed_reduction``) and the
    split-attention fusion MLP (``reduction``, ``min_channels``, ``rd_channels``).

    Args:
        channels: input (= output) channels C; divisible by ``key_groups``, ``share_planes`` and
            ``embed_reduction``.
        kernel_size: k, the odd neighbourhood of keys and of the local aggregation (paper: 3).
        key_groups: groups of the k x k key convolution (paper: 4).
        share_planes: s, channels sharing one attention kernel (paper: 8).
        embed_reduction: the attention embedding is ``2C -> C / embed_reduction`` (paper: 2; formerly ``factor``).
        reduction: the fusion MLP is ``max(2C // reduction, min_channels)`` wide (2C: the radix-2 split; paper: 4).
        min_channels: lower bound of the fusion MLP width (paper: 32; formerly ``min_attn_channels``).
        act_layer: activation of the dynamic context (paper: SiLU/swish).
        rd_channels: explicit width of the fusion MLP (overrides ``reduction`` and ``min_channels``; keyword only).
    """

    @deprecated_kwargs(factor="embed_reduction", min_attn_channels="min_channels")
    def __init__(self, channels: int, kernel_size: int = 3, key_groups: int = 4, share_planes: int = 8,
                 embed_reduction: int = 2, reduction: int = 4, min_channels: int = 32, act_layer: LayerType = "silu",
                 *, rd_channels: int | None = None):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        for n, v in (("kernel_size", kernel_size), ("key_groups", key_groups), ("share_planes", share_planes),
                     ("embed_reduction", embed_reduction), ("min_channels", min_channels)):
            check_positive_int(n, v)
        check_odd("kernel_size", kernel_size)
        check_divisible("channels", channels, "key_groups", key_groups)
        check_divisible("channels", channels, "share_planes", share_planes)
        check_divisible("channels", channels, "embed_reduction", embed_reduction)
        self.kernel_size, self.share_planes = kernel_size, share_planes
        self.weight_groups = channels // share_planes
        k2 = kernel_size * kernel_size
        embed = channels // embed_reduction
        self.key_embed = ConvNormAct(channels, channels, kernel_size, groups=key_groups)
        self.value_embed = ConvNormAct(channels, channels, 1, act_layer=None)
        # A = GN(W_delta ReLU(BN(W_theta [x; K1]))): k^2 weights per position for each of the C/s kernel groups
        self.attn_embed = nn.Sequential(
            ConvNormAct(2 * channels, embed, 1),
            ConvNormAct(embed, k2 * self.weight_groups, 1, bias=True,
                        norm_layer=partial(nn.GroupNorm, self.weight_groups), act_layer=None))
        self.bn = nn.BatchNorm2d(channels)
        self.act = create_act(act_layer, inplace=True)
        self.radix = 2
        attn_chs = reduced_channels(channels * self.radix, reduction, rd_channels, min_channels=min_channels)
        self.fuse = nn.Sequential(ConvNormAct(channels, attn_chs, 1, bias=True),
                                  nn.Conv2d(attn_chs, self.radix * channels, 1))

    def local_aggregate(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``out[c, p] = sum_j a[c mod C/s, j, p] * v[c, p + offset_j]`` over the k x k offsets j (zero
        padding); ``v`` (B, C, H, W), ``a`` (B, C/s * k^2, H, W): the channels ``c`` with the same ``c mod C/s``
        share one kernel (the "share planes" grouping of the authors' code)."""
        b, c, h, w = v.shape
        k, g = self.kernel_size, self.weight_groups
        if is_channels_last(v):  # on the (B, H, W, C) memory: no transposing copy in or out
            out = local_aggregate(v.permute(0, 2, 3, 1).view(b, h, w, c // g, g),
                                  a.permute(0, 2, 3, 1).reshape(b, h, w, 1, g, k * k), k, channels_last=True)
            return out.view(b, h, w, c).permute(0, 3, 1, 2)
        out = local_aggregate(v.view(b, c // g, g, h, w), a.view(b, 1, g, k * k, h, w), k)
        return out.reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        b, c, h, w = x.shape
        k1 = self.key_embed(x)
        a = self.attn_embed(torch.cat([x, k1], dim=1))
        k2 = self.act(self.bn(self.local_aggregate(self.value_embed(x), a)))
        # split attention over the two contexts: the fusion MLP on their pooled sum, its 1x1 convolutions as
        # matrix products on the (B, C) vector
        s = torch.softmax(pointwise_forward(spatial_mean(k1 + k2), self.fuse).view(b, c, self.radix), dim=2)
        return k1 * s[:, :, 1, None, None] + k2 * s[:, :, 0, None, None]  # k1 (a conv of x: its layout) first
