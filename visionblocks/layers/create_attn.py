"""The one way to ask for an attention module inside a block or a model: ``attn_layer`` is a registered block
name (an ``nchw`` block such as ``"se"``, ``"eca"``, ``"cbam"``; Hu et al., Squeeze-and-Excitation Networks,
CVPR 2018, arXiv 1709.01507, and the gates after it), a module class or factory taking ``channels``, or
``None`` for none; ``attn_kwargs`` are its further keyword arguments."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from visionblocks.registry import block_info

from .layer_type import LayerType

__all__ = ["get_attn_layer", "create_attn"]


def get_attn_layer(attn_layer: LayerType) -> Callable[..., nn.Module] | None:
    """The class or factory ``attn_layer`` names: a registered ``nchw`` block name (case-insensitive, former
    names too) gives its class; a class or factory is returned as is; ``None`` stays ``None``."""
    if attn_layer is None:
        return None
    if isinstance(attn_layer, str):
        info = block_info(attn_layer)
        if info.layout != "nchw":
            raise ValueError(f"attn_layer must name an 'nchw' block (input and output (B, C, H, W)); "
                             f"{attn_layer!r} has layout {info.layout!r}")
        return info.cls
    if callable(attn_layer):
        return attn_layer
    raise TypeError(f"attn_layer must be a block name, a module class or factory, or None, got "
                    f"{type(attn_layer).__name__} ({attn_layer!r})")


def create_attn(attn_layer: LayerType, channels: int, **attn_kwargs) -> nn.Module:
    """``attn_layer(channels, **attn_kwargs)`` resolved by :func:`get_attn_layer`; ``nn.Identity()`` for ``None``."""
    cls = get_attn_layer(attn_layer)
    return nn.Identity() if cls is None else cls(channels, **attn_kwargs)
