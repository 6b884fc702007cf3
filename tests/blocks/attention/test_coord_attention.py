"""Tests of :mod:`visionblocks.blocks.attention.coord_attention`."""
import torch

import visionblocks as vb

from _reference import _build, bn_eval as _bn, assert_inference_path_equals_autograd_path


def test_coord_attention_pooled_descriptors_are_directional_means():
    # in training, F1's BatchNorm normalises over every pooled position of both directions (B * (H + W) values
    # per channel): its running mean moves to momentum * the mean of W1 [z^h, z^w] + b1, with z^h the average
    # over W and z^w the average over H
    m = _build("coord_attention", 16).train()
    bn = m.conv1.bn
    bn.reset_running_stats()
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    w1, b1 = m.conv1.conv.weight[:, :, 0, 0], m.conv1.conv.bias
    z = torch.cat([x.mean(3), x.mean(2)], dim=2)                   # (B, C, H + W)
    f = torch.einsum("mc,bcl->bml", w1, z) + b1[:, None]
    m(x)
    torch.testing.assert_close(bn.running_mean, bn.momentum * f.mean((0, 2)), rtol=1e-10, atol=1e-12)
    var = f.var((0, 2), unbiased=True)
    torch.testing.assert_close(bn.running_var, (1 - bn.momentum) + bn.momentum * var, rtol=1e-10, atol=1e-12)
    # and the gates follow the axes: rolling the input along H or W rolls the output the same way
    m.eval()
    torch.testing.assert_close(m(x.roll(2, dims=3)), m(x).roll(2, dims=3))
    torch.testing.assert_close(m(x.roll(1, dims=2)), m(x).roll(1, dims=2))


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


def test_coord_attention_inference_path_equals_autograd_path():
    assert_inference_path_equals_autograd_path("coord_attention", 32, input_shape=(2, 32, 9, 7))
