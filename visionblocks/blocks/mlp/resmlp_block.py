"""ResMLP block (Touvron et al., ResMLP: Feedforward networks for image classification with data-efficient
training, TPAMI 2022, arXiv 2105.03404).

With ``X`` the (N x C) token table and ``Aff_{a,b}(x) = Diag(a) x + b`` the per-channel affine map that
replaces LayerNorm (paper, eqs. 1-3)::

    Z = X + LS1 * (A Aff1(X))                # cross-patch linear sublayer: A is (N x N), with bias
    Y = Z + LS2 * (C GELU(B Aff2(Z)))        # cross-channel MLP, hidden width 4C

``LS`` is LayerScale (a learnable per-channel scale, initialised to ``init_values``: 0.1 for ResMLP-12,
1e-5 for ResMLP-24, 1e-6 for ResMLP-36).  ``A`` is tied to the number of tokens N by design.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    Affine, DropPath, LayerType, Mlp, check_nlc, check_positive_int, check_tokens, token_linear,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["ResMLPBlock"]


@register_block("resmlp_block", family="mlp", layout="nlc", fixed_size=True,
                paper="Touvron et al., ResMLP: Feedforward networks for image classification with data-efficient "
                      "training, TPAMI 2022",
                url="https://arxiv.org/abs/2105.03404",
                example=Example(args=(64, 16), kwargs={"init_values": 0.1}, input_shape=(2, 16, 64)))
@validated()
class ResMLPBlock(nn.Module):
    """One ResMLP layer: Affine -> linear over tokens -> LayerScale, then Affine -> MLP -> LayerScale.

    Args:
        dim: channels C of the (B, N, C) tokens.
        num_tokens: N, the patch count the (N x N) cross-patch layer is built for (fixed by design).
        mlp_ratio: hidden width of the channel MLP over C (paper: 4).
        init_values: LayerScale initialisation.  Default 1e-4, the authors' block default
            (``layers_scale_mlp_blocks`` in facebookresearch/deit) and timm's; the paper's networks set it by
            depth (0.1 for 12 blocks, 1e-5 for 24, 1e-6 for 36), as ``resmlp_12``/``24``/``36`` do.
        act_layer: MLP activation (paper: GELU).
        drop_path: stochastic-depth rate.
    """

    def __init__(self, dim: int, num_tokens: int, mlp_ratio: float = 4.0, init_values: float = 1e-4,
                 act_layer: LayerType = "gelu", drop_path: float = 0.0):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_tokens = check_positive_int("num_tokens", num_tokens)
        self.norm1 = Affine(dim)
        self.token_fc = nn.Linear(num_tokens, num_tokens)
        self.ls1 = nn.Parameter(torch.full((dim,), float(init_values)))
        self.norm2 = Affine(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)
        self.ls2 = nn.Parameter(torch.full((dim,), float(init_values)))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nlc(x, self.dim, type(self).__name__)
        check_tokens(x, self.num_tokens, type(self).__name__)
        x = x + self.drop_path(self.ls1 * token_linear(self.norm1(x), self.token_fc))
        return x + self.drop_path(self.ls2 * self.mlp(self.norm2(x)))
