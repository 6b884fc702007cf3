"""Tests of :mod:`visionblocks.blocks.attention.coord_attention`."""
import torch

from _reference import _build, bn_eval as _bn


def test_coord_attention_pooled_descriptors_are_directional_means():
    m = _build("coord_attention", 16)
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    seen = {}
    h = m.conv1.register_forward_hook(lambda mod, inp, out: seen.update(z=inp[0]))
    m(x)
    h.remove()
    z = seen["z"]
    assert z.shape == (2, 16, 5 + 7, 1)
    torch.testing.assert_close(z[:, :, :5, 0], x.mean(3))   # z^h: average over W
    torch.testing.assert_close(z[:, :, 5:, 0], x.mean(2))   # z^w: average over H
def test_coord_attention_matches_equations():
    m = _build("coord_attention", 64, reduction=32)
    assert m.conv1.out_channels == 8  # max(8, 64 // 32)
    x = torch.randn(2, 64, 6, 9, dtype=torch.float64)
    B, C, H, W = x.shape

    def hswish(t):
        return t * torch.clamp(t + 3, 0, 6) / 6
    w1, b1 = m.conv1.conv.weight[:, :, 0, 0], m.conv1.conv.bias
    zh, zw = x.mean(3), x.mean(2)                                  # (B, C, H), (B, C, W)
    fh = hswish(_bn(torch.einsum("mc,bch->bmh", w1, zh) + b1[:, None], m.conv1.bn))
    fw = hswish(_bn(torch.einsum("mc,bcw->bmw", w1, zw) + b1[:, None], m.conv1.bn))
    gh = torch.sigmoid(torch.einsum("cm,bmh->bch", m.conv_h.weight[:, :, 0, 0], fh) + m.conv_h.bias[:, None])
    gw = torch.sigmoid(torch.einsum("cm,bmw->bcw", m.conv_w.weight[:, :, 0, 0], fw) + m.conv_w.bias[:, None])
    ref = x * gh[:, :, :, None] * gw[:, :, None, :]
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-12)
