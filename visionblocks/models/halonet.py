"""HaloNet (Vaswani et al., Scaling Local Self-Attention for Parameter Efficient Visual Backbones, CVPR 2021,
arXiv 2103.12731).

A ResNet whose every bottleneck 3x3 convolution is replaced by blocked local self-attention with haloing
(``halo_attention``) followed by the bottleneck's BN-activation; the downsampling of stages 2-4 is the paper's
strided self-attention (the queries of each block subsampled by 2) with a strided 1x1 shortcut.

The family is parameterised (paper, Sec. 4 / appendix) by the query block size ``b``, the halo ``h``, the value
width multiplier ``rv``, the bottleneck output multiplier ``rb``, the depth ``l3`` of the third stage and an
optional final 1x1 width ``df``.  Stage ``i`` (i = 0..3) has attention width ``64 * 2**i * rv`` and block output
``64 * 2**i * rb`` (the widths of the reproductions of the paper in timm's ``halo_cfg`` and
keras_cv_attention_models, read, not copied); the depths are 3, 3, ``l3``, 3 and the stem is ResNet's 7x7
convolution and max-pool.  Queries and keys have the attention width (``dim_head = width / num_heads``).

H0: b = 8, h = 3, rv = 1.0, rb = 0.5, l3 = 7, no df, 256x256 input.

Not registered, and the widths are unconfirmed: the paper's own parameter and FLOP figures for H0 could not
be established from the sources available (the 5.5 M quoted by keras_cv_attention_models is that project's
own count of this same guessed structure -- its README calls the architecture "guessed from article" and its
H-model parameter column changed with its implementation -- not a figure from the paper), and timm's
``halonet_h1``, built with these same widths (ours: 8.09 M for H1), carries the note "param count lower than
paper --> something is wrong" (its halo_attn.py: "my parameter counts are 2M less").  So the reading "block output = 64 * 2**i * rb" may not be the paper's; nothing independent checks
our count.  See ``halonet_h0``.
"""
from __future__ import annotations

from functools import partial

from visionblocks.blocks.attention import HaloAttention
from visionblocks.layers import LayerType, NormAct, check_divisible, check_positive_int

from .resnet import Bottleneck, ResNet, build_resnet

__all__ = ["HaloBottleneck", "halo_mid_layer", "halonet", "halonet_h0"]


def halo_mid_layer(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                   act_layer: LayerType = "relu", stage: int = 0, block_size: int = 8, halo_size: int = 3,
                   num_heads: int = 8) -> NormAct:
    """HaloNet's middle-layer hook: halo attention -> BN -> activation (the stage is not used).

    Args:
        in_channels: attention input channels (the bottleneck width).
        out_channels: attention output (value) channels.
        stride: query subsampling of the strided attention (1 or 2).
        groups: must be 1 (HaloNet has no grouped bottleneck).
        act_layer: activation after the BN.
        block_size, halo_size, num_heads: b, h and the heads of the attention (paper: 8, 3, 8).
    """
    if groups != 1:
        raise ValueError(f"HaloNet bottlenecks take no ResNeXt groups, got groups={groups}")
    check_positive_int("in_channels", in_channels)
    check_divisible("in_channels", in_channels, "num_heads", num_heads)
    attn = HaloAttention(in_channels, out_channels, block_size=block_size, halo_size=halo_size, num_heads=num_heads,
                         dim_head=in_channels // num_heads, stride=stride)
    return NormAct(attn, out_channels, act_layer=act_layer)


class HaloBottleneck(Bottleneck):
    """ResNet bottleneck whose ``planes`` are its output channels (HaloNet sets the output width with rb)."""

    expansion = 1


def halonet(block_size: int, halo_size: int, rb: float, l3: int, rv: float = 1.0, num_heads: int = 8,
            **kwargs) -> ResNet:
    """A HaloNet of the paper's family (only ``rv = 1`` and no final ``df`` layer, as H0-H2)."""
    if rv != 1.0:
        raise ValueError(f"only rv=1.0 is supported (attention width = bottleneck width), got rv={rv}")
    check_positive_int("l3", l3)
    chans = tuple(int(round(64 * 2 ** i * rb)) for i in range(4))
    widths = tuple(64 * 2 ** i for i in range(4))
    base_width = 64 * 64 / chans[0]  # width = planes * base_width / 64 = 64 * 2**i
    if any(int(c * (base_width / 64.0)) != w for c, w in zip(chans, widths)):
        raise ValueError(f"rb={rb} gives block outputs {chans} that do not scale the widths {widths} exactly")
    halo = partial(halo_mid_layer, block_size=block_size, halo_size=halo_size, num_heads=num_heads)
    # the stride is the strided attention's (stride_3x3)
    return build_resnet(HaloBottleneck, (3, 3, l3, 3), kwargs, channels=chans, width_per_group=base_width,
                        mid_layer=halo, stride_3x3=True)


def halonet_h0(**kwargs) -> ResNet:
    """HaloNet-H0 (b = 8, h = 3, rv = 1.0, rb = 0.5, l3 = 7; input 256x256).

    Ours: 5.495 M params, 2.31 G multiply-adds at 256x256 (torch's flop counter: convolutions, the linear
    layer and the attention matrix products).  The paper's figures for H0 could not be confirmed, so this
    builder is not registered.
    """
    return halonet(8, 3, 0.5, 7, **kwargs)
