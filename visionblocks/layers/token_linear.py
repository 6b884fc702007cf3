"""A linear layer applied along the token axis: the token-mixing projections of the all-MLP models
(Tolstikhin et al., MLP-Mixer, NeurIPS 2021, arXiv 2105.01601; Touvron et al., ResMLP, arXiv 2105.03404;
Liu et al., gMLP, NeurIPS 2021, arXiv 2105.08050), which mix the N tokens of each channel with an (N' x N)
matrix where a transformer FFN mixes the channels of each token."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["token_linear"]


def token_linear(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``linear`` applied along the token axis of (B, N, C) tokens -> (B, N', C): ``W X + b`` for each sample's
    (N x C) table, the value of ``linear(x.transpose(1, 2)).transpose(1, 2)``.

    It runs as a 1-D convolution (tokens as in-channels, C as the length) with the bias fused and no
    transposes: one GEMM per sample, and a weight gradient accumulated in place, where a broadcast ``matmul``
    builds a per-sample (B, N', N) weight gradient and reduces it afterwards (same weights, same result).
    """
    return F.conv1d(x, linear.weight[:, :, None], linear.bias)
