"""What every model shares: resolving an ``attn=`` argument and the classifier head."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
import torch.nn as nn

from visionblocks.layers import LayerType, get_attn_layer, spatial_mean

__all__ = ["ClassifierHead", "ModelBase", "resolve_attn"]


def resolve_attn(attn: LayerType, attn_kwargs: dict | None = None) -> Callable[[int], nn.Module] | None:
    """A model's ``attn=``/``attn_kwargs=`` as the factory ``channels -> nn.Module`` its blocks call (``None`` for
    no attention); ``attn`` is resolved by :func:`~visionblocks.layers.create_attn.get_attn_layer` (a registered
    ``nchw`` block name, a module class or factory taking ``channels``, or ``None``)."""
    cls = get_attn_layer(attn)
    return None if cls is None else partial(cls, **(attn_kwargs or {}))


class ClassifierHead(nn.Module):
    """Global average pooling, optional dropout, then a linear classifier (identity when num_classes=0)."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = spatial_mean(x) if x.ndim == 4 else x
        x = self.drop(x)
        return x if pre_logits else self.fc(x)


class ModelBase(nn.Module):
    """``forward = forward_head(forward_features(x))`` with input validation, as in timm."""

    in_chans: int = 3

    def check_input(self, x: Any) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"{type(self).__name__} expects input of shape (B, {self.in_chans}, H, W), "
                             f"got {tuple(x.shape)}")

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The classifier on the features: ``self.head(x, pre_logits=pre_logits)`` (a :class:`ClassifierHead`
        pools (B, C, H, W) features itself).  Models whose head needs more, e.g. pooling tokens first or a
        convolution before the classifier, override it."""
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
