"""Squeeze-and-Excitation (Hu et al., CVPR 2018, arXiv 1709.01507).

``y = x * sigmoid(W2 relu(W1 avgpool(x)))`` with ``W1: C -> C/r`` and ``W2: C/r -> C`` (both with bias).
The module lives in :mod:`visionblocks.layers.squeeze_excite` because other blocks and models embed it.
"""
from __future__ import annotations

from visionblocks.layers import SqueezeExcite
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["SqueezeExcite"]

register_block("se", family="attention", layout="nchw", paper="Hu et al., Squeeze-and-Excitation Networks, CVPR 2018",
               url="https://arxiv.org/abs/1709.01507",
               example=Example(args=(64,), input_shape=(2, 64, 14, 14)))(validated(SqueezeExcite))
