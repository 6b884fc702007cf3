"""A linear layer applied along the token axis: the token-mixing projections of the all-MLP models
(Tolstikhin et al., MLP-Mixer, NeurIPS 2021, arXiv 2105.01601; Touvron et al., ResMLP, arXiv 2105.03404;
Liu et al., gMLP, NeurIPS 2021, arXiv 2105.08050), which mix the N tokens of each channel with an (N' x N)
matrix where a transformer FFN mixes the channels of each token."""
from __future__ import annotations

import torch
import torch.nn as nn

from .helpers import records_grad
from .plain import is_plain

__all__ = ["token_linear"]


def token_linear(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``linear`` applied along the token axis of (B, N, C) tokens -> (B, N', C): ``W X + b`` for each sample's
    (N x C) table, the value of ``linear(x.transpose(1, 2)).transpose(1, 2)``.

    It runs as one batched matrix product, ``baddbmm(b, W, X_b)`` with the weight broadcast over the batch (a
    view, no copy) and the bias added by the same kernel; no transposes.  Measured against the former 1-D
    convolution form (tokens as in-channels) by ``benchmarks/token_linear_forms.py`` (alternating in one process,
    2 threads, glibc malloc thresholds raised): 0.63-0.72x its time in inference and 0.66-0.77x in
    forward+backward at the Mixer/ResMLP shapes (8 x 196 tokens x 384/512 channels).

    Under autograd that product's weight gradient is a (B, N', N) tensor of per-sample gradients summed down:
    N'/C times the input's size, 49x at a ResNet stage's 56x56 tokens with 64 channels.  When N' > C (and the
    weight is trained) the layer runs as ``F.linear`` on the transposed tokens instead, whose weight gradient is
    one (N', N) product (``token_linear_forms.py --shape 8,784,64,784``, 1 thread: forward+backward 0.87x the
    batched form's time).  A ``linear`` that is not plain (:func:`~visionblocks.layers.is_plain`: hooked,
    pruned, quantized, a subclass) is called on the transposed tokens.
    """
    if not is_plain(linear, nn.Linear) or (linear.weight.shape[0] > x.shape[-1] and records_grad(linear.weight)):
        return linear(x.transpose(1, 2)).transpose(1, 2)
    w = linear.weight.expand(x.shape[0], -1, -1)
    if linear.bias is None:
        return torch.bmm(w, x)
    return torch.baddbmm(linear.bias[:, None], w, x)
