"""The transformer feed-forward network: ``fc2(drop(act(fc1(x))))`` along the last (channel) axis
(Vaswani et al., Attention Is All You Need, NeurIPS 2017, arXiv 1706.03762; the MLP of ViT, Mixer, ResMLP...)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .activations import create_act
from .layer_type import LayerType

__all__ = ["Mlp"]


class Mlp(nn.Module):
    """Linear -> act -> dropout -> Linear -> dropout on (..., C) tensors.

    Args:
        in_features: input channels C.
        hidden_features: hidden width (default C).
        out_features: output channels (default C).
        act_layer: activation (default GELU).
        drop: dropout after the activation and after ``fc2`` (``nn.Identity`` when 0).
        bias: biases of both linear layers.
    """

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                 act_layer: LayerType = "gelu", drop: float = 0.0, bias: bool = True):
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = create_act(act_layer)
        self.drop1 = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features, bias=bias)
        self.drop2 = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))
