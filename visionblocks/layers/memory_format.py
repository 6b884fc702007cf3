"""Memory format: whether a 4-d map is stored channels-last, the one test every layout-aware block uses.

On the CPU a network whose convolution weights are channels-last (``visionblocks.fuse`` on the CPU,
``visionblocks.to_channels_last``) passes channels-last maps between its layers: a block that reduces, reshapes or
broadcasts against such a map in the (B, C, H, W) order ATen assumes when it allocates a result strides across
it (3-10x slower in the reductions and broadcast products measured at ResNet-stage shapes).  Blocks ask this
test and lay out their small intermediates (pooled planes, gates) to match.
"""
from __future__ import annotations

import torch

__all__ = ["is_channels_last"]


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-d tensor stored channels-last (C innermost) and not also NCHW-contiguous.

    A tensor that is both (C == 1, or H == W == 1: the two layouts coincide) counts as NCHW, as do
    non-dense views and tensors of other ranks.
    """
    return x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
