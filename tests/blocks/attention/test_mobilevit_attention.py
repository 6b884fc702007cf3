"""Tests of :mod:`visionblocks.blocks.attention.mobilevit_attention`."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _float64, _pixel_groups, _randomize_attention_window


def _mha(layer, t, nh):
    B, N, D = t.shape
    d = D // nh
    qkv = (t @ layer.qkv.weight.T + layer.qkv.bias).reshape(B, N, 3, nh, d).permute(2, 0, 3, 1, 4)
    att = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (att @ qkv[2]).transpose(1, 2).reshape(B, N, D) @ layer.proj.weight.T + layer.proj.bias
def _mobilevit_reference(m, x, nh):
    """Eq. (1): per intra-patch pixel p, transformers over the patches (only in-image pixels exist)."""
    B, C, H, W = x.shape
    y = m.conv_1x1_in(m.conv_kxk(x))
    out = torch.zeros_like(y)
    for group in _pixel_groups(H, W, *m.patch_size):
        t = torch.stack([y[:, :, r, c] for r, c in group], 1)           # B, N_p, d
        for layer in m.layers:
            n1 = F.layer_norm(t, t.shape[-1:], layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
            t = t + _mha(layer.attn, n1, nh)
            n2 = F.layer_norm(t, t.shape[-1:], layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)
            f1, f2 = layer.ffn.fc1, layer.ffn.fc2
            t = t + F.silu(n2 @ f1.weight.T + f1.bias) @ f2.weight.T + f2.bias
        t = F.layer_norm(t, t.shape[-1:], m.norm.weight, m.norm.bias, m.norm.eps)
        for n, (r, c) in enumerate(group):
            out[:, :, r, c] = t[:, n]
    return m.conv_fusion(torch.cat([x, m.conv_proj(out)], 1))
@pytest.mark.usefixtures("_float64")
@pytest.mark.parametrize("size", [(6, 8), (7, 5)])
def test_mobilevit_attention_matches_reference(size):
    m = _randomize_attention_window(vb.create_block("mobilevit_attention", 8, transformer_dim=12, num_layers=2, num_heads=3))
    x = torch.randn(2, 8, *size)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _mobilevit_reference(m, x, 3), rtol=1e-10, atol=1e-10)
@pytest.mark.usefixtures("_float64")
def test_mobilevit_attention_validates():
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("mobilevit_attention", 8, transformer_dim=10, num_heads=4)
