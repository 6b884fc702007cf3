"""ShuffleNet's channel shuffle (Zhang et al., ShuffleNet, arXiv 1707.01083), shared by the blocks and models
that mix channel groups with it (SA-Net's shuffle attention, ParNet)."""
from __future__ import annotations

import torch

__all__ = ["channel_shuffle"]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, g*n, H, W) channels viewed as (B, g, n), transposed to (B, n, g) and flattened back."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)
