"""The pre-norm transformer layer with any token mixer, ``x + mixer(norm(x))`` then ``x + MLP(norm(x))``: the
MetaFormer abstraction (Yu et al., MetaFormer Is Actually What You Need for Vision, CVPR 2022, arXiv 2111.11418)
of the transformer encoder layer (Vaswani et al., NeurIPS 2017, arXiv 1706.03762), shared by the models whose
layers differ only in their token mixer (ViP's permute-MLP, VOLO's outlooker and self-attention, ResT's EMSA)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .drop import DropPath
from .layer_type import LayerType
from .mlp import Mlp
from .norm import create_norm

__all__ = ["MetaFormerBlock"]


class MetaFormerBlock(nn.Module):
    """``x = x + DropPath(attn(norm1(x)))``, then ``x + DropPath(mlp(norm2(x)))``, on (..., C) tokens.

    Args:
        dim: channels C (the last axis).
        token_mixer: the module that mixes tokens (stored as ``attn``); a subclass whose mixer takes another
            layout or more arguments overrides :meth:`mix_tokens`.
        mlp_ratio: hidden width of the MLP over C.
        act_layer: activation of the MLP (GELU).
        norm_layer: the two norms (LayerNorm, eps 1e-5).
        drop: dropout inside the MLP.
        drop_path: stochastic-depth rate of both residual branches.
    """

    def __init__(self, dim: int, token_mixer: nn.Module, mlp_ratio: float = 4.0, act_layer: LayerType = "gelu",
                 norm_layer: LayerType = nn.LayerNorm, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = create_norm(norm_layer, dim)
        self.attn = token_mixer
        self.norm2 = create_norm(norm_layer, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def mix_tokens(self, x: torch.Tensor, *args) -> torch.Tensor:
        """The token mixer on the normalised tokens (``args``: what :meth:`forward` received after ``x``)."""
        return self.attn(x, *args)

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        x = x + self.drop_path(self.mix_tokens(self.norm1(x), *args))
        return x + self.drop_path(self.mlp(self.norm2(x)))
