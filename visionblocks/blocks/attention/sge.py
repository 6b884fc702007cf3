"""Spatial Group-wise Enhance (Li, Hu & Yang, arXiv 1905.09646, 2019).

The C channels are split into G groups; in each group, with ``x_i`` the (C/G)-vector at position i and
``g = mean_i x_i`` the group's global descriptor: ``c_i = g . x_i``, ``c^_i = (c_i - mu_c) / (sigma_c + eps)``
(mean and standard deviation over the m = H*W positions, ``sigma_c^2 = 1/m sum (c_i - mu_c)^2``),
``a_i = gamma c^_i + beta`` (one gamma, beta per group, initialised to 0 and 1 as in the authors' code) and
``x^_i = x_i * sigmoid(a_i)``.  Paper default G = 64.

The paper's Eq. (3) defines sigma_c with 1/m (the biased standard deviation): our default.  The authors'
released code (implus/PytorchInsight) divides by the unbiased one (``torch.std``, 1/(m-1)); ``unbiased=True``
computes that, so the authors' checkpoints load exactly (it refuses a 1x1 map, whose sigma is 0/0 there).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import check_divisible, check_nchw, check_positive_int, spatial_mean
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["SpatialGroupEnhance"]


@register_block("sge", family="attention", layout="nchw",
                paper="Li et al., Spatial Group-wise Enhance: Improving Semantic Feature Learning in "
                      "Convolutional Networks, arXiv 2019",
                url="https://arxiv.org/abs/1905.09646",
                example=Example(args=(128,), kwargs={}, input_shape=(2, 128, 14, 14)))
@validated(unbiased="bool")
class SpatialGroupEnhance(nn.Module):
    """Per-group spatial gate from the similarity of each position to the group's global feature.

    Args:
        channels: input (= output) channels C, divisible by ``groups``.
        groups: G, number of channel groups (paper: 64).
        eps: added to the standard deviation (1e-5).
        unbiased: False (default) = the paper's formula, ``sigma_c^2 = 1/m sum (c_i - mu_c)^2``; True = the
            authors' released code, the unbiased ``1/(m-1)`` (``torch.std``; a 1x1 map is refused: 0/0).
    """

    def __init__(self, channels: int, groups: int = 64, eps: float = 1e-5, unbiased: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.groups = check_positive_int("groups", groups)
        check_divisible("channels", channels, "groups", groups)
        self.eps = eps
        self.unbiased = unbiased
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        b, ch, h, w = x.shape
        m = h * w
        if self.unbiased and not torch.compiler.is_compiling() and m < 2:
            raise ValueError(f"{type(self).__name__} with unbiased=True divides by m - 1 positions: it needs H * W >= "
                             f"2, got an input of spatial size {tuple(x.shape[-2:])}")
        xg = x.reshape(b, self.groups, ch // self.groups, m)                        # (B, G, C/G, m)
        # c_i = g . x_i, the dot product of each position with the group mean g, as one batched matrix
        # product (no full-size product tensor in forward or backward)
        g = spatial_mean(x).view(b, self.groups, 1, ch // self.groups)               # (B, G, 1, C/G)
        c = torch.matmul(g, xg)                                                       # (B, G, 1, m)
        # mu and sigma over the m positions (1/m: the paper's sigma; 1/(m-1): the authors' code) as a sum
        # and a 2-norm of the deviations: torch.std_mean's one-pass kernel costs several times the whole gate
        d = c - c.sum(-1, keepdim=True) / m
        sigma = torch.linalg.vector_norm(d, dim=-1, keepdim=True) / (m - int(self.unbiased)) ** 0.5
        # sigmoid(gamma c^ + beta); (d * s).add_(beta), not addcmul(beta, d, s): ATen's addcmul with the broadcast
        # (1, G, 1, 1) beta as its input runs ~3.5x slower than the product and the in-place sum (the product's
        # output is saved by nothing, so the in-place sum is safe under autograd)
        a = (d * (self.weight / (sigma + self.eps))).add_(self.bias).sigmoid_()
        return (xg * a).view_as(x)
