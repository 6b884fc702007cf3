"""Tests of :mod:`visionblocks.blocks.attention.emsa`."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _block, _layer_norm, _softmax_rows


D = torch.float64
def _emsa_reference(m, x):
    B, C, H, W = x.shape
    h = m.num_heads
    d = C // h
    s = m.sr_ratio
    tokens = x.flatten(2).transpose(1, 2)
    q = tokens @ m.q.weight.T + m.q.bias
    if s > 1:  # depthwise conv k = s + 1, stride s, padding s // 2, written as explicit sums
        p = s // 2
        xp = F.pad(x, (p, p, p, p))
        Ho, Wo = (H + 2 * p - (s + 1)) // s + 1, (W + 2 * p - (s + 1)) // s + 1
        red = torch.zeros(B, C, Ho, Wo, dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                patch = xp[:, :, i * s:i * s + s + 1, j * s:j * s + s + 1]
                red[:, :, i, j] = (patch * m.sr.weight[:, 0]).sum((2, 3)) + m.sr.bias
        r = _layer_norm(red.flatten(2).transpose(1, 2), m.sr_norm.weight, m.sr_norm.bias)
    else:
        r = tokens
    k, v = (r @ m.kv.weight.T + m.kv.bias).chunk(2, -1)
    out = torch.zeros(B, H * W, C, dtype=x.dtype)
    for b in range(B):
        logits = torch.stack([q[b, :, i * d:(i + 1) * d] @ k[b, :, i * d:(i + 1) * d].T / math.sqrt(d)
                              for i in range(h)])
        if m.apply_transform:
            tw, tb = m.transform_conv.weight[:, :, 0, 0], m.transform_conv.bias
            mixed = torch.stack([sum(tw[o, g] * logits[g] for g in range(h)) + tb[o] for o in range(h)])
            a = _softmax_rows(mixed)
            a = torch.stack([(ai - ai.mean()) / torch.sqrt(((ai - ai.mean()) ** 2).mean() + 1e-5) for ai in a])
        else:
            a = _softmax_rows(logits)
        for i in range(h):
            out[b, :, i * d:(i + 1) * d] = a[i] @ v[b, :, i * d:(i + 1) * d]
    y = out @ m.proj.weight.T + m.proj.bias
    return y.transpose(1, 2).reshape(B, C, H, W)
@pytest.mark.parametrize("heads,sr,size", [(4, 2, (6, 7)), (2, 4, (9, 8)), (1, 8, (16, 11)), (2, 1, (3, 5))])
def test_emsa_reference(heads, sr, size):
    m = _block("emsa", 8, num_heads=heads, sr_ratio=sr)
    assert m.apply_transform == (heads > 1)
    x = torch.randn(2, 8, *size, dtype=D)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _emsa_reference(m, x), rtol=1e-9, atol=1e-9)
def test_emsa_structure_and_validation():
    m = vb.create_block("emsa", 64, num_heads=4, sr_ratio=2)
    assert m.sr.kernel_size == (3, 3) and m.sr.stride == (2, 2) and m.sr.groups == 64
    assert isinstance(m.sr_norm, torch.nn.LayerNorm) and isinstance(m.transform_norm, torch.nn.InstanceNorm2d)
    assert m.transform_conv.in_channels == m.transform_conv.out_channels == 4
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("emsa", 30, num_heads=4)


def test_emsa_inference_holds_one_attention_map():
    # without autograd the (h, B, N, N') map exists once (the head mixing is folded into one product, the softmax
    # and the instance norm work in place); it was held three times at once (q k^T, the mixed map, the softmax)
    from visionblocks.testing import peak_memory
    B, C, h, s, H, W = 2, 16, 4, 2, 32, 32
    m = vb.create_block("emsa", C, num_heads=h, sr_ratio=s).eval()
    x = torch.randn(B, C, H, W)
    N, Nr = H * W, (H // s) * (W // s)
    one_map = h * B * N * Nr * x.element_size()
    # besides the map: the token-sized projections, the h head-weighted query copies, the output: ~2 h + 8 inputs
    with torch.no_grad():
        assert peak_memory(lambda: m(x)) <= one_map + (2 * h + 8) * x.numel() * x.element_size()


def test_emsa_inference_path_matches_autograd_path():
    m = _block("emsa", 8, num_heads=4, sr_ratio=2)
    x = torch.randn(2, 8, 7, 6, dtype=D)
    with torch.no_grad():
        y = m(x)
    torch.testing.assert_close(y, m(x.requires_grad_()).detach(), rtol=1e-10, atol=1e-10)
