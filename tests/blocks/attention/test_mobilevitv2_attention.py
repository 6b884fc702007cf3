"""Tests of :mod:`visionblocks.blocks.attention.mobilevitv2_attention`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _float64, _pixel_groups, _randomize_attention_window, _w


def _mobilevitv2_reference(m, x):
    """Separable attention by hand: c_s = softmax_n(x W_I) over the in-image tokens of each pixel position,
    c_v = sum_n c_s(n) x_n W_K, y = (ReLU(x W_V) * c_v) W_O; GroupNorm(1) over the in-image map."""
    y = m.conv_1x1_in(m.conv_kxk(x))
    groups = _pixel_groups(*x.shape[-2:], *m.patch_size)
    d = y.shape[1]

    def gn(z, norm):
        return F.group_norm(z, 1, norm.weight, norm.bias, norm.eps)

    def conv1x1(z, conv):
        w, b = _w(conv)
        return torch.einsum("oc,bchw->bohw", w, z) + b[:, None, None]

    for layer in m.layers:
        u = conv1x1(gn(y, layer.norm1), layer.attn.qkv)
        i, k, v = u[:, :1], u[:, 1:1 + d], u[:, 1 + d:]
        att = torch.zeros_like(y)
        for group in groups:
            rows, cols = [r for r, _ in group], [c for _, c in group]
            scores = torch.softmax(i[:, 0, rows, cols], dim=-1)                # B, N_p  (context scores)
            context = (k[:, :, rows, cols] * scores[:, None]).sum(-1)           # B, d    (context vector)
            att[:, :, rows, cols] = F.relu(v[:, :, rows, cols]) * context[:, :, None]
        y = y + conv1x1(att, layer.attn.proj)
        f1, f2 = layer.ffn.fc1, layer.ffn.fc2
        y = y + conv1x1(F.silu(conv1x1(gn(y, layer.norm2), f1)), f2)
    return m.conv_proj(gn(y, m.norm))
@pytest.mark.usefixtures("_float64")
@pytest.mark.parametrize("size", [(6, 8), (7, 5)])
def test_mobilevitv2_attention_matches_reference(size):
    m = _randomize_attention_window(vb.create_block("mobilevitv2_attention", 8, transformer_dim=6, num_layers=2))
    x = torch.randn(2, 8, *size)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _mobilevitv2_reference(m, x), rtol=1e-10, atol=1e-10)
