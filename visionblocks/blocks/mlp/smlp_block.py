"""Sparse MLP (sMLP) block (Tang et al., Sparse MLP for Image Recognition: Is Self-Attention Really
Necessary?, AAAI 2022, arXiv 2109.05422).

Each token mixes only with the tokens of its row and of its column, with weights shared by every row /
column and every channel (paper, eqs. 3-5)::

    X_H = X W_H + b_H         # 1-D MLP along H (one H x H matrix for all columns and channels)
    X_W = X W_W + b_W         # 1-D MLP along W
    Y = Fuse(concat[X, X_H, X_W])   # 1x1 convolution 3C -> C, no bias

As in the authors' code (microsoft/SPACH, ``sMLPBlock``), the block is pre-activated by BatchNorm + GELU.
``W_H``/``W_W`` are tied to the spatial size by design.

The authors' H/W naming is swapped (their block asserts H == W, so it never shows): their ``proj_h`` acts on
``x.permute(0, 3, 1, 2)``, i.e. mixes along W, and their ``proh_w`` (sic) along H, and they concatenate
``[X, their x_h, their x_w]``.  So their ``proj_h`` is our ``proj_w``, their ``proh_w`` our ``proj_h``, and
the fuse's second and third input-channel blocks (C each) swap places; a converter of their checkpoints does
exactly this.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    LayerType, check_nchw, check_positive_int, check_size, create_act, create_norm, dense_strides, is_plain,
    layout_like, to_2tuple,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["SparseMLPBlock"]


@register_block("smlp_block", family="mlp", layout="nchw", fixed_size=True,
                paper="Tang et al., Sparse MLP for Image Recognition: Is Self-Attention Really Necessary?, AAAI 2022",
                url="https://arxiv.org/abs/2109.05422",
                example=Example(args=(32, (14, 14)), input_shape=(2, 32, 14, 14)))
@validated()
class SparseMLPBlock(nn.Module):
    """Axial token mixing: identity, MLP along H and MLP along W, fused by a 1x1 convolution.

    Args:
        channels: C.
        size: (H, W) the axial projections are built for (fixed by design; an int means square).
        act_layer: pre-activation (paper code: GELU).
        norm_layer: pre-normalisation (paper code: BatchNorm).
    """

    def __init__(self, channels: int, size: int | tuple[int, int] = (14, 14), act_layer: LayerType = "gelu",
                 norm_layer: LayerType = "batchnorm"):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.size = tuple(check_positive_int("size", s) for s in to_2tuple(size))
        h, w = self.size
        self.norm = create_norm(norm_layer, channels)
        self.act = create_act(act_layer)
        self.proj_h = nn.Linear(h, h)
        self.proj_w = nn.Linear(w, w)
        self.fuse = nn.Conv2d(3 * channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        check_size(x, self.size, type(self).__name__)
        x = dense_strides(x)  # (the norm takes x as it comes: see layers.dense_strides)
        t = self.act(self.norm(x))
        if is_plain(self.proj_h, nn.Linear):
            t_h = torch.matmul(self.proj_h.weight, t) + self.proj_h.bias[:, None]   # proj_h along H (dim -2)
        else:  # a hooked or replaced proj_h is called on the (..., W, H) view
            t_h = self.proj_h(t.transpose(-1, -2)).transpose(-1, -2)
        t_w = self.proj_w(t)                                                    # proj_w along W (last dim)
        return layout_like(self.fuse(torch.cat([t, t_h, t_w], dim=1)), x)
