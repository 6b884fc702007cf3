"""ShuffleNet's channel shuffle (Zhang et al., ShuffleNet, arXiv 1707.01083), shared by the blocks and models
that mix channel groups with it (SA-Net's shuffle attention, ParNet)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .memory_format import is_channels_last

__all__ = ["channel_shuffle"]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, g*n, H, W) channels viewed as (B, g, n), transposed to (B, n, g) and flattened back.

    A channels-last map goes to ATen's ``channel_shuffle`` kernel, which keeps its layout (1.06 broadcast
    multiplies at 8x256x28x28; the reshape below would return an NCHW map through a transposing copy, and a
    strided-output product 4); an NCHW map takes the reshape (the form every exporter knows), and so does any map
    under ``torch.jit.trace`` (the TorchScript ONNX exporter has no ``channel_shuffle``: a fused, channels-last
    ParNet or SA-ResNet was refused)."""
    if is_channels_last(x) and not torch.jit.is_tracing():
        return F.channel_shuffle(x, groups)
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)
