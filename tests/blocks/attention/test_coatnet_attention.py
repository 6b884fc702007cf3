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
@pytest.mark.usefixtures("_float64")
@pytest.mark.parametrize("rel,size", [((5, 5), (3, 4)), ((3, 4), (5, 6)), ((4, 2), (1, 7))])
def test_relative_position_bias_matches_loop(rel, size):
    """B[h, (yi, xi), (yj, xj)] = T[h, yi - yj + H - 1, xi - xj + W - 1], T the table cropped / interpolated to
    (2H - 1, 2W - 1)."""
    from visionblocks.blocks.attention.coatnet_attention import relative_position_bias
    (a, b), (H, W) = rel, size
    table = torch.randn(3, 2 * a - 1, 2 * b - 1)
    t = table
    if 2 * H - 1 > t.shape[1] or 2 * W - 1 > t.shape[2]:
        t = F.interpolate(t[None], size=(max(2 * H - 1, t.shape[1]), max(2 * W - 1, t.shape[2])), mode="bicubic",
                          align_corners=False)[0]
    oh, ow = (t.shape[1] - 2 * H + 1) // 2, (t.shape[2] - 2 * W + 1) // 2
    t = t[:, oh:oh + 2 * H - 1, ow:ow + 2 * W - 1]
    pos = [(i, j) for i in range(H) for j in range(W)]
    ref = torch.stack([torch.stack([t[:, yi - yj + H - 1, xi - xj + W - 1] for (yj, xj) in pos], -1)
                       for (yi, xi) in pos], -2)
    torch.testing.assert_close(relative_position_bias(table, H, W), ref, rtol=0, atol=0)
def test_coatnet_attention_eval_memory_is_the_bias_plus_activations():
    """An eval call keeps alive the (heads, N, N) bias (SDPA's additive mask, inherent) and O(N C) activations,
    no N^2-sized integer index: peak < bias + 16 input-sized tensors (qkv, heads, attention out, projection,
    residual, LayerNorm ...; the FFN runs after the bias is freed).  The former three int64 (N, N) index
    temporaries alone were 3 x 2 x 4 N^2 bytes (here 1.5 MiB vs the bound's 0.77 MiB)."""
    from visionblocks.testing import peak_memory
    m = vb.create_block("coatnet_attention", 16, dim_head=8, rel_size=16).eval()
    x = torch.randn(1, 16, 16, 16)
    n, heads = 16 * 16, m.attn.num_heads
    bias_bytes = heads * n * n * x.element_size()
    with torch.no_grad():
        peak = peak_memory(lambda: m(x))
    assert peak < bias_bytes + 16 * x.numel() * x.element_size(), (peak, bias_bytes)


def test_a_dynamic_export_runs_up_to_the_table_size_itself():
    """Exported with a dynamic size at 8x8, the program runs at every size up to rel_size, the table's own size
    included (the crop was a sliced view, whose contiguity the trace decided on the example: the program
    refused the sizes where nothing is cropped), and refuses larger ones (they interpolate the table)."""
    from torch.export import Dim
    torch.manual_seed(0)
    m = vb.create_block("coatnet_attention", 64, rel_size=14).eval()
    ep = torch.export.export(m, (torch.randn(2, 64, 8, 8),), dynamic_shapes=({0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO},))
    for shape in ((1, 64, 14, 14), (3, 64, 11, 14), (1, 64, 5, 9)):
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(ep.module()(x), m(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match="Guard failed"):
        ep.module()(torch.randn(1, 64, 15, 14))
