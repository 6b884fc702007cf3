"""The feed-forward network on channel-first maps, ``fc2(drop(act(fc1(x))))`` with 1x1 convolutions: the FFN of
MobileViTv2 (Mehta & Rastegari, Separable Self-attention for Mobile Vision Transformers, arXiv 2206.02680) and
the excitation MLP of SE-style gates (Hu et al., CVPR 2018, arXiv 1709.01507), which apply it to pooled (B, C)
descriptors.  :class:`~visionblocks.layers.Mlp` is the same network along the last axis."""
from __future__ import annotations

import torch
import torch.nn as nn

from .activations import create_act
from .layer_type import LayerType
from .pointwise import pointwise_linear

__all__ = ["ConvMlp"]


class ConvMlp(nn.Module):
    """1x1 conv -> act -> dropout -> 1x1 conv -> dropout on (B, C, H, W) maps, or on (..., C) vectors with
    :meth:`forward_vector`.  The arguments are :class:`~visionblocks.layers.Mlp`'s (``in_features`` = C; the
    hidden and output widths default to C, ``drop`` is ``nn.Identity`` when 0); ``fc1``/``fc2`` are 1x1
    ``nn.Conv2d`` layers, whose (out, in, 1, 1) weights load from the papers' convolutional code.
    """

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                 act_layer: LayerType = "gelu", drop: float = 0.0, bias: bool = True):
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Conv2d(in_features, hidden_features, 1, bias=bias)
        self.act = create_act(act_layer, inplace=True)
        self.drop1 = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.fc2 = nn.Conv2d(hidden_features, out_features or in_features, 1, bias=bias)
        self.drop2 = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))

    def forward_vector(self, x: torch.Tensor) -> torch.Tensor:
        """The same network on (..., C) vectors (e.g. globally pooled descriptors) -> (..., out_features)."""
        return self.drop2(pointwise_linear(self.drop1(self.act(pointwise_linear(x, self.fc1))), self.fc2))
