"""Tests of :mod:`visionblocks.blocks.attention.triplet_attention`."""
import copy

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _build, bn_eval as _bn, assert_inference_path_equals_autograd_path


def _triplet_reference(x, m):
    """The paper's three rotated branches, literally: rotate, Z-pool [max; mean], conv7x7, BN, sigmoid,
    multiply, rotate back; average.  In eval the BN is written out (``bn_eval``); in training each gate's own BN
    normalises the reference's conv output with its batch statistics."""
    def branch(t, gate):
        z = torch.cat([t.max(1, keepdim=True).values, t.mean(1, keepdim=True)], dim=1)
        k = gate.conv.weight
        s = F.conv2d(z, k, padding=k.shape[-1] // 2)
        return t * torch.sigmoid(gate.bn(s) if m.training else _bn(s, gate.bn))
    out_cw = branch(x.permute(0, 2, 1, 3), m.gate_cw).permute(0, 2, 1, 3)   # H plays the channels
    out_hc = branch(x.permute(0, 3, 2, 1), m.gate_hc).permute(0, 3, 2, 1)   # W plays the channels
    out_hw = branch(x, m.gate_hw)
    return (out_cw + out_hc + out_hw) / 3


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("channels,hw,banded", [(12, (9, 11), False), (64, (9, 11), True), (48, (5, 12), True)])
def test_triplet_matches_rotated_branches(channels, hw, banded, channels_last):
    """In eval and in training (gradients of input and weights); with C >= 4 H, 4 W the (C, W) and (H, C) planes'
    convolutions run banded (layers.PlaneConv2d), otherwise direct.  A channels-last input (its pools taken on the
    (B, H, W, C) view, its gates laid out C-innermost) gives the same values and a channels-last output."""
    m = _build("triplet_attention", channels)
    assert m.gate_cw.conv.use_banded(channels, hw[1]) is banded and m.gate_hc.conv.use_banded(hw[0], channels) is banded
    x = torch.randn(2, channels, *hw, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        y = m(x)
    torch.testing.assert_close(y, _triplet_reference(x, m), rtol=1e-10, atol=1e-12)
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    torch.testing.assert_close(m(x), y, rtol=1e-10, atol=1e-12)    # with autograd on
    m.train()
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1 = m(x1)
    ref = copy.deepcopy(m)
    y2 = _triplet_reference(x2, ref)
    torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-12)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-11)
    for (name, p), q in zip(m.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-11, msg=name)
def test_triplet_known_gates():
    """Centre-tap kernels (a on max, b on mean) and identity BN give gates sigmoid(a*max + b*mean)."""
    m = vb.create_block("triplet_attention", 5).double().eval()
    coef = {"gate_cw": (0.7, -0.4), "gate_hc": (-0.3, 0.9), "gate_hw": (0.5, 0.25)}
    with torch.no_grad():
        for name, (a, b) in coef.items():
            gate = getattr(m, name)
            gate.conv.weight.zero_()
            gate.conv.weight[0, 0, 3, 3] = a
            gate.conv.weight[0, 1, 3, 3] = b
            gate.bn.eps = 0.0
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    B, C, H, W = x.shape
    ref = torch.empty_like(x)
    for bi in range(B):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    col, row, pix = x[bi, c, :, j], x[bi, c, i, :], x[bi, :, i, j]
                    g1 = torch.sigmoid(0.7 * col.max() - 0.4 * col.mean())    # C-W plane (pool over H)
                    g2 = torch.sigmoid(-0.3 * row.max() + 0.9 * row.mean())   # H-C plane (pool over W)
                    g3 = torch.sigmoid(0.5 * pix.max() + 0.25 * pix.mean())   # H-W plane (pool over C)
                    ref[bi, c, i, j] = x[bi, c, i, j] * (g1 + g2 + g3) / 3
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-12)
def test_triplet_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        vb.create_block("triplet_attention", 8, kernel_size=4)


@pytest.mark.parametrize("hw", [(9, 7), (8, 8)])
def test_triplet_attention_inference_path_equals_autograd_path(hw):
    assert_inference_path_equals_autograd_path("triplet_attention", 16, input_shape=(2, 16, *hw))
