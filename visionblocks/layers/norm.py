"""Normalisation layers and their lookup by name or class."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LayerNorm2d", "GroupNorm1", "get_norm_layer", "create_norm"]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an NCHW tensor (as in ConvNeXt)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GroupNorm1(nn.GroupNorm):
    """GroupNorm with one group: LayerNorm over (C, H, W), as MobileViTv2 and PoolFormer use."""

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__(1, num_channels, eps=eps, affine=affine)


_NORMS: dict[str, type[nn.Module]] = {
    "batchnorm": nn.BatchNorm2d, "batchnorm2d": nn.BatchNorm2d, "bn": nn.BatchNorm2d,
    "batchnorm1d": nn.BatchNorm1d, "layernorm": nn.LayerNorm, "ln": nn.LayerNorm,
    "layernorm2d": LayerNorm2d, "groupnorm1": GroupNorm1, "instancenorm": nn.InstanceNorm2d,
    "identity": nn.Identity,
}


def get_norm_layer(norm: str | type[nn.Module] | Callable[..., nn.Module] | None) -> Callable[..., nn.Module]:
    """Return the norm class for a name (``"batchnorm"``, ``"layernorm2d"``...), a class, or ``None``."""
    if norm is None:
        return nn.Identity
    if isinstance(norm, str):
        try:
            return _NORMS[norm.lower()]
        except KeyError:
            raise ValueError(f"unknown norm layer {norm!r}; known: {', '.join(sorted(_NORMS))}") from None
    if callable(norm):
        return norm
    raise TypeError(f"norm_layer must be a name, an nn.Module class or None, got {type(norm).__name__}")


def create_norm(norm: str | type[nn.Module] | None, num_features: int) -> nn.Module:
    cls = get_norm_layer(norm)
    return nn.Identity() if cls is nn.Identity else cls(num_features)
