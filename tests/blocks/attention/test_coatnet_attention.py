"""Tests of :mod:`visionblocks.blocks.attention.coatnet_attention`."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _float64, _randomize_attention_window


def _coatnet_reference(m, x):
    """Explicit softmax with w_{i-j} read from the table at (dy + a - 1, dx + b - 1), pre-norm residuals."""
    B, C, H, W = x.shape
    at = m.attn
    nh, d = at.num_heads, at.head_dim
    a, b = (at.rel_table.shape[1] + 1) // 2, (at.rel_table.shape[2] + 1) // 2
    t = x.flatten(2).transpose(1, 2)
    pos = [(i, j) for i in range(H) for j in range(W)]
    bias = torch.empty(nh, H * W, H * W)
    for p, (yi, xi) in enumerate(pos):
        for q, (yj, xj) in enumerate(pos):
            bias[:, p, q] = at.rel_table[:, yi - yj + a - 1, xi - xj + b - 1]
    u = F.layer_norm(t, (C,), m.norm1.weight, m.norm1.bias, m.norm1.eps)
    qkv = (u @ at.qkv.weight.T + at.qkv.bias).reshape(B, H * W, 3, nh, d)
    q, k, v = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
    y = (att @ v).transpose(1, 2).reshape(B, H * W, C) @ at.proj.weight.T + at.proj.bias
    t = t + y
    u = F.layer_norm(t, (C,), m.norm2.weight, m.norm2.bias, m.norm2.eps)
    t = t + F.gelu(u @ m.mlp.fc1.weight.T + m.mlp.fc1.bias) @ m.mlp.fc2.weight.T + m.mlp.fc2.bias
    return t.transpose(1, 2).reshape(B, C, H, W)
@pytest.mark.usefixtures("_float64")
@pytest.mark.parametrize("size", [(5, 5), (3, 4)])
def test_coatnet_attention_matches_explicit_softmax(size):
    """At the table's size and below it (the centre of the table holds every offset)."""
    m = _randomize_attention_window(vb.create_block("coatnet_attention", 16, dim_head=8, rel_size=5))
    x = torch.randn(2, 16, *size)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _coatnet_reference(m, x), rtol=1e-10, atol=1e-10)
@pytest.mark.usefixtures("_float64")
def test_coatnet_attention_validates():
    with pytest.raises(ValueError, match="dim_head"):
        vb.create_block("coatnet_attention", 48, dim_head=32)
    with pytest.raises(ValueError, match="out_channels"):
        vb.create_block("coatnet_attention", 64, 128, stride=1)
