"""gMLP block (Liu et al., Pay Attention to MLPs, NeurIPS 2021, arXiv 2105.08050).

With ``X`` the (N x d) token table (paper, eqs. 1-3 and its pseudo-code)::

    Z = GELU(LN(X) U)                    # U: d -> d_ffn (paper: d_ffn = 6 d)
    Z1, Z2 = split(Z)                    # two halves of d_ffn / 2 channels
    s(Z) = Z1 * (W LN(Z2) + b)           # spatial gating unit; W is (N x N), mixes tokens
    Y = X + s(Z) V                       # V: d_ffn / 2 -> d

``W`` is initialised near zero and ``b`` to ones, so at initialisation ``s(Z) = Z1`` and the block is a plain
FFN (the paper's "near-identity" initialisation).  ``W`` is tied to the token count N by design.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    DropPath, LayerType, check_divisible, check_nlc, check_positive_int, check_tokens, create_act, token_linear,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["GMLPBlock", "SpatialGatingUnit"]


class SpatialGatingUnit(nn.Module):
    """``Z1 * (W LN(Z2) + b)`` over (B, N, 2 * c) input; ``W`` (N x N) ~ 0 and ``b = 1`` at initialisation."""

    def __init__(self, channels: int, num_tokens: int, init_std: float = 1e-6, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(channels // 2, eps=eps)
        self.proj = nn.Linear(num_tokens, num_tokens)
        nn.init.normal_(self.proj.weight, std=init_std)
        nn.init.ones_(self.proj.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u, v = z.chunk(2, dim=-1)
        return u * token_linear(self.norm(v), self.proj)   # W LN(v) + b mixes the N tokens


@register_block("gmlp_block", family="mlp", layout="nlc", fixed_size=True,
                paper="Liu et al., Pay Attention to MLPs, NeurIPS 2021", url="https://arxiv.org/abs/2105.08050",
                example=Example(args=(32, 16), input_shape=(2, 16, 32)))
@validated()
class GMLPBlock(nn.Module):
    """One gMLP layer: LN -> channel projection -> GELU -> spatial gating unit -> channel projection, + skip.

    Args:
        dim: channels d of the (B, N, d) tokens.
        num_tokens: N, the token count the spatial projection is built for (fixed by design).
        ffn_ratio: d_ffn / d (paper: 6 for gMLP-Ti/S/B); d_ffn must be even (it is split in two halves).
        act_layer: activation after the first projection (paper: GELU).
        drop_path: stochastic-depth rate.
        init_std: standard deviation of the near-zero initialisation of the spatial weights.
        eps: LayerNorm epsilon.
        sgu_eps: epsilon of the spatial gating unit's LayerNorm (``None``: ``eps``; timm's gMLP uses 1e-5 there
            and 1e-6 in the block norm).
    """

    def __init__(self, dim: int, num_tokens: int, ffn_ratio: float = 6.0, act_layer: LayerType = "gelu",
                 drop_path: float = 0.0, init_std: float = 1e-6, eps: float = 1e-6, sgu_eps: float | None = None):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_tokens = check_positive_int("num_tokens", num_tokens)
        d_ffn = int(dim * ffn_ratio)
        check_positive_int("d_ffn (dim * ffn_ratio)", d_ffn)
        check_divisible("d_ffn (dim * ffn_ratio)", d_ffn, "the 2 halves of the gating unit", 2)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.proj_in = nn.Linear(dim, d_ffn)
        self.act = create_act(act_layer)
        self.sgu = SpatialGatingUnit(d_ffn, num_tokens, init_std, eps if sgu_eps is None else sgu_eps)
        self.proj_out = nn.Linear(d_ffn // 2, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nlc(x, self.dim, type(self).__name__)
        check_tokens(x, self.num_tokens, type(self).__name__)
        y = self.proj_out(self.sgu(self.act(self.proj_in(self.norm(x)))))
        return x + self.drop_path(y)
