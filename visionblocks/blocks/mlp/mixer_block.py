"""MLP-Mixer block (Tolstikhin et al., MLP-Mixer: An all-MLP Architecture for Vision, NeurIPS 2021,
arXiv 2105.01601).

With ``X`` the (N tokens x C channels) table of one image, the block computes (paper, eq. 1)::

    U = X + W2 GELU(W1 LN(X))          # token mixing: the MLP acts on each column (over tokens)
    Y = U + GELU(LN(U) W3) W4          # channel mixing: the MLP acts on each row (over channels)

``W1: N -> D_S`` and ``W2: D_S -> N`` are tied to the number of tokens N by design, so the block is built
for one N (``num_tokens``) and rejects another.  Paper defaults (every Mixer size): ``D_S = C / 2`` and
``D_C = 4 C``; LayerNorm eps 1e-6 as in the official JAX code.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import DropPath, LayerType, Mlp, check_nlc, check_positive_int, check_tokens, token_linear
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["MixerBlock", "TokenMLP"]


class TokenMLP(Mlp):
    """The MLP along the token axis of (B, N, C): ``W2 act(W1 X + b1) + b2`` on every channel's column of N
    tokens (``fc1: N -> D_S``, ``fc2: D_S -> N``), with :func:`~visionblocks.layers.token_linear` (no
    transposes)."""

    def __init__(self, num_tokens: int, hidden: int, act_layer: LayerType = "gelu"):
        super().__init__(num_tokens, hidden, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.act(token_linear(x, self.fc1)))
        return self.drop2(token_linear(x, self.fc2))


@register_block("mixer_block", family="mlp", layout="nlc", fixed_size=True,
                paper="Tolstikhin et al., MLP-Mixer: An all-MLP Architecture for Vision, NeurIPS 2021",
                url="https://arxiv.org/abs/2105.01601",
                example=Example(args=(64, 16), input_shape=(2, 16, 64)))
@validated()
class MixerBlock(nn.Module):
    """One Mixer layer: token-mixing MLP then channel-mixing MLP, each pre-LayerNorm with a skip connection.

    Args:
        dim: channels C of the (B, N, C) tokens.
        num_tokens: N, the number of tokens (patches) the token MLP is built for (fixed by design).
        token_mlp_ratio: D_S / C (paper: 0.5 for every model size).
        channel_mlp_ratio: D_C / C (paper: 4).
        act_layer: MLP activation (paper: GELU).
        drop_path: stochastic-depth rate of both residual branches.
        eps: LayerNorm epsilon (official code: 1e-6).
    """

    def __init__(self, dim: int, num_tokens: int, token_mlp_ratio: float = 0.5, channel_mlp_ratio: float = 4.0,
                 act_layer: LayerType = "gelu", drop_path: float = 0.0, eps: float = 1e-6):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_tokens = check_positive_int("num_tokens", num_tokens)
        tokens_hidden, channels_hidden = int(dim * token_mlp_ratio), int(dim * channel_mlp_ratio)
        if tokens_hidden <= 0 or channels_hidden <= 0:
            raise ValueError(f"MLP ratios give empty hidden layers: D_S={tokens_hidden}, D_C={channels_hidden}")
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.token_mlp = TokenMLP(num_tokens, tokens_hidden, act_layer)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.channel_mlp = Mlp(dim, channels_hidden, act_layer=act_layer)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nlc(x, self.dim, type(self).__name__)
        check_tokens(x, self.num_tokens, type(self).__name__)
        x = x + self.drop_path(self.token_mlp(self.norm1(x)))
        return x + self.drop_path(self.channel_mlp(self.norm2(x)))
