"""Class-specific residual attention head, CSRA (Zhu & Wu, Residual Attention: A Simple but Effective
Method for Multi-Label Recognition, ICCV 2021, arXiv 2108.02456).

For features ``x_j`` (j over the H*W positions) and a class-i classifier ``m_i`` (1x1 convolution without
bias), the scores ``s^i_j = m_i^T x_j / ||m_i||`` (the authors' code normalises each classifier) give
``logit_i = mean_j s^i_j + lambda * sum_j softmax_j(T s^i_j) s^i_j``: the average-pooled logit plus
``lambda`` times a class-specific, attention-pooled one (Eq. 1-5; ``T = inf`` is max pooling).  With
``num_heads > 1`` (MHA) the logits of heads of temperatures ``1, 2, ..., inf`` (the paper's settings) add.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import check_nchw, check_positive_int, is_plain
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["CSRA", "CSRAHead", "TEMPERATURES", "class_scores"]

#: the paper's temperature of each head, by number of heads (``inf``: max pooling)
TEMPERATURES = {1: (1.0,), 2: (1.0, math.inf), 4: (1.0, 2.0, 4.0, math.inf), 6: (1.0, 2.0, 3.0, 4.0, 5.0, math.inf),
                8: (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, math.inf)}


def class_scores(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) features, (K, C, 1, 1) classifier -> (B, K, HW) class scores, as a 1x1 convolution (oneDNN's
    1x1 convolution beats the equivalent batched matrix product in forward and backward on CPU)."""
    return F.conv2d(x, weight).flatten(2)


class CSRAHead(nn.Module):
    """One attention head of CSRA (the paper's multi-head attention, MHA): a class-specific residual attention
    of temperature ``T`` and residual weight ``lam``, (B, C, H, W) -> (B, K) logits; :class:`CSRA` sums its
    heads' logits."""

    def __init__(self, channels: int, num_classes: int, temperature: float = 1.0, lam: float = 0.1):
        super().__init__()
        self.temperature, self.lam = float(temperature), float(lam)
        self.classifier = nn.Conv2d(channels, num_classes, 1, bias=False)

    def inverse_norm(self) -> torch.Tensor:
        """``1 / ||w_k||`` for each class k, (K,).  The paper scores with l2-normalised class weights,
        ``s_k = x . w_k / ||w_k||``; :meth:`pool` applies the scale to the pooled (B, K) logits instead of the
        weights or the (B, K, HW) scores (mean and max commute with a positive scale, the softmax takes it in
        its temperature): the same logits for fewer full-size operations."""
        return torch.linalg.vector_norm(self.classifier.weight.flatten(1), dim=1).reciprocal()

    def pool(self, score: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """(B, K, HW) raw class scores and the (K,) per-class scale -> (B, K) logits of the scaled scores
        ``s = score * scale``: ``mean_j s_j + lam * attention pooling of s``."""
        n = score.shape[-1]
        if self.temperature == math.inf:   # max with indices: faster backward than amax (math.isinf: no SymFloat)
            return (score.sum(-1) / n + self.lam * score.max(-1)[0]) * scale
        att = torch.softmax(score * (self.temperature * scale)[:, None], dim=-1)
        # mean_j s_j + lam * sum_j a_j s_j = scale * sum_j score_j (lam * a_j + 1 / HW): one weighted sum
        return (score * (att * self.lam + 1.0 / n)).sum(-1) * scale

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """The raw (B, K, HW) class scores: ``classifier`` on ``x`` (called when hooked or replaced)."""
        if is_plain(self.classifier, nn.Conv2d):
            return class_scores(x, self.classifier.weight)
        return self.classifier(x).flatten(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = self.scores(x)   # before inverse_norm: a pruning pre-hook sets the weight it reads
        return self.pool(score, self.inverse_norm())


@register_block("csra", family="attention", layout="head", aliases=("residual_attention",),
                paper="Zhu & Wu, Residual Attention: A Simple but Effective Method for Multi-Label Recognition, "
                      "ICCV 2021", url="https://arxiv.org/abs/2108.02456",
                example=Example(args=(64, 20), kwargs={"num_heads": 1, "lam": 0.1}, input_shape=(2, 64, 7, 7)))
@validated()
class CSRA(nn.Module):
    """CSRA classification head: (B, C, H, W) features -> (B, num_classes) logits.

    Args:
        channels: feature channels C.
        num_classes: number of classes K.
        num_heads: 1, 2, 4, 6 or 8 heads with the paper's temperatures (paper default: 1, T = 1).
        lam: lambda, the weight of the attention logit (paper: 0.1).
        temperatures: explicit per-head temperatures (overrides ``num_heads``; ``math.inf`` = max pooling).
    """

    def __init__(self, channels: int, num_classes: int, num_heads: int = 1, lam: float = 0.1,
                 temperatures: tuple[float, ...] | None = None):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("num_classes", num_classes)
        if temperatures is None:
            if num_heads not in TEMPERATURES:
                raise ValueError(f"num_heads must be one of {sorted(TEMPERATURES)}, got {num_heads}")
            temperatures = TEMPERATURES[num_heads]
        if len(temperatures) == 0 or any(t <= 0 for t in temperatures):
            raise ValueError(f"temperatures must be a non-empty sequence of positive numbers, got {temperatures}")
        self.num_classes = num_classes
        self.heads = nn.ModuleList(CSRAHead(channels, num_classes, t, lam) for t in temperatures)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        if len(self.heads) == 1:
            return self.heads[0](x)
        # the heads' classifiers run as one convolution on their stacked weights; each head scales its own logits
        if all(is_plain(head.classifier, nn.Conv2d) for head in self.heads):
            scores = class_scores(x, torch.cat([head.classifier.weight for head in self.heads]))
        else:  # hooked or replaced classifiers are called, each on its own
            scores = torch.cat([head.scores(x) for head in self.heads], dim=1)
        out = None
        for head, score in zip(self.heads, scores.split(self.num_classes, dim=1)):
            logit = head.pool(score, head.inverse_norm())
            out = logit if out is None else out + logit
        return out
