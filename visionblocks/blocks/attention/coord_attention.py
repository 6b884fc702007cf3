"""Coordinate Attention (Hou, Zhou & Feng, Coordinate Attention for Efficient Mobile Network Design,
CVPR 2021, arXiv 2103.02907).

Direction-aware pooling ``z^h_c(h) = mean_w x_c(h, w)`` and ``z^w_c(w) = mean_h x_c(h, w)`` (Eq. 2-3);
``f = delta(BN(F1([z^h, z^w])))`` with a shared 1x1 convolution ``F1: C -> C/r`` over the concatenated
H + W positions (Eq. 4); ``g^h = sigmoid(F_h(f^h))``, ``g^w = sigmoid(F_w(f^w))`` (Eq. 5-6) and
``y_c(i, j) = x_c(i, j) * g^h_c(i) * g^w_c(j)`` (Eq. 7).  As in the authors' code, the bottleneck width is
``max(8, C // r)`` with ``r = 32``, delta is h-swish and the 1x1 convolutions have biases.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvNormAct, LayerType, check_nchw, check_positive_int, is_channels_last, is_plain, layout_like, mean_over,
    reduced_channels,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["CoordAttention"]


def _conv1x1(t: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The 1x1 convolution ``conv`` on a (B, C_in, L) map -> (B, C_out, L), as the matrix product of its
    (out, in) weight: ``conv(t[..., None])[..., 0]``.  On these (L, 1) maps ATen's convolution takes its slow
    im2col path; the product also leaves the gates contiguous in (B, C, L), which the broadcast multiplies
    over x need.  A hooked or replaced ``conv`` is called."""
    if not is_plain(conv, nn.Conv2d):
        return conv(t[..., None])[..., 0]
    weight = conv.weight.flatten(1).expand(t.shape[0], -1, -1)
    if conv.bias is None:
        return torch.bmm(weight, t)
    return torch.baddbmm(conv.bias[:, None], weight, t)  # bias added in the product's own kernel


def _direction_means(x: torch.Tensor) -> torch.Tensor:
    """``[mean over W ; mean over H]`` of a (B, C, H, W) map, side by side as (B, C, H + W) (``layers.mean_over``:
    GEMV products without autograd, sums divided on the small maps with it)."""
    return torch.cat([mean_over(x, 3), mean_over(x, 2)], dim=2)


@register_block("coord_attention", family="attention", layout="nchw",
                paper="Hou et al., Coordinate Attention for Efficient Mobile Network Design, CVPR 2021",
                url="https://arxiv.org/abs/2103.02907",
                example=Example(args=(64,), kwargs={"reduction": 32}, input_shape=(2, 64, 14, 14)))
@validated()
class CoordAttention(nn.Module):
    """Gates along H and along W from direction-aware average pooling.

    Args:
        channels: input (= output) channels C.
        reduction: r, the bottleneck is ``max(min_channels, C // r)`` wide (paper: 32).
        min_channels: lower bound of the bottleneck width (authors' code: 8).
        act_layer: the non-linearity delta (paper: h-swish).
        norm_layer: normalisation after the shared 1x1 convolution (paper: BatchNorm).
        rd_channels: explicit bottleneck width (overrides ``reduction`` and ``min_channels``; keyword only).
    """

    def __init__(self, channels: int, reduction: int = 32, min_channels: int = 8, act_layer: LayerType = "hard_swish",
                 norm_layer: LayerType = "batchnorm", *, rd_channels: int | None = None):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("min_channels", min_channels)
        mid = reduced_channels(channels, reduction, rd_channels, min_channels=min_channels)
        # F1, shared by the H and W descriptors: 1x1 convolution (with bias, as the authors') -> BN -> delta
        self.conv1 = ConvNormAct(channels, mid, 1, bias=True, norm_layer=norm_layer, act_layer=act_layer)
        self.conv_h = nn.Conv2d(mid, channels, 1)
        self.conv_w = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        h, w = x.shape[-2:]
        # z^h (Eq. 2) and z^w (Eq. 3) as sums divided on the small maps (their backward is a broadcast view),
        # side by side as a (B, C, H + W) map for the shared F1 (Eq. 4)
        z = _direction_means(x)
        if is_plain(self.conv1, ConvNormAct):
            f = self.conv1.act(self.conv1.bn(_conv1x1(z, self.conv1.conv).unsqueeze(-1))).squeeze(-1)
        else:  # a hooked or replaced F1 is called
            f = self.conv1(z.unsqueeze(-1)).squeeze(-1)
        # the gates are laid out as x (C innermost for a channels-last map)
        g_h = layout_like(torch.sigmoid(_conv1x1(f[:, :, :h], self.conv_h)).unsqueeze(3), x)  # (B, C, H, 1), Eq. 5
        g_w = layout_like(torch.sigmoid(_conv1x1(f[:, :, h:], self.conv_w)).unsqueeze(2), x)  # (B, C, 1, W), Eq. 6
        if torch.is_grad_enabled() and is_channels_last(x):
            # on the (B, H, W, C) view: autograd reduces x * g to each gate's shape in the view's order, over a
            # non-innermost axis (vectorised along C); on the (B, C, H, W) view of a channels-last map those sums
            # are 2-3x slower (forward + backward, channels-last, new / old: 0.80-0.81 at 8x{64,256}x28x28)
            xp, gh, gw = (t.permute(0, 2, 3, 1) for t in (x, g_h, g_w))
            return (xp * gh * gw).permute(0, 3, 1, 2)
        y = x * g_h
        # Eq. 7; without autograd, the second gate multiplies in place (no second full-size allocation)
        return y * g_w if torch.is_grad_enabled() else y.mul_(g_w)
