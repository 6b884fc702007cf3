"""Tests of :mod:`visionblocks.blocks.attention.danet`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _cna, _randomize


D = torch.float64
def test_danet_position_attention_map_is_softmax_bt_c():
    m = _randomize(vb.create_block("danet", 64)).double()
    pam = m.pos_attn
    a = torch.randn(2, 16, 6, 7, dtype=D)
    for b in range(2):
        A = a[b].flatten(1)                                                        # (C', N)
        Bm = pam.conv_b.weight[:, :, 0, 0] @ A + pam.conv_b.bias[:, None]          # (C'/8, N)
        Cm = pam.conv_c.weight[:, :, 0, 0] @ A + pam.conv_c.bias[:, None]
        Dm = pam.conv_d.weight[:, :, 0, 0] @ A + pam.conv_d.bias[:, None]          # (C', N)
        energy = Bm.T @ Cm                                                         # [i, j] = B_i . C_j
        S = torch.exp(energy) / torch.exp(energy).sum(0, keepdim=True)             # s_ji, normalised over i
        E = pam.alpha * (Dm @ S) + A                                               # E_j = a sum_i s_ji D_i + A_j
        torch.testing.assert_close(pam(a[b:b + 1]).flatten(2)[0], E, rtol=1e-10, atol=1e-10)
def test_danet_channel_attention_is_softmax_a_at():
    m = _randomize(vb.create_block("danet", 64)).double()
    cam = m.chan_attn
    a = torch.randn(2, 16, 5, 4, dtype=D) * 0.3
    for b in range(2):
        A = a[b].flatten(1)                                                        # (C', N)
        energy = A @ A.T                                                           # [j, i] = A_j . A_i
        X = torch.exp(energy) / torch.exp(energy).sum(1, keepdim=True)             # x_ji, normalised over i
        E = cam.beta * (X @ A) + A
        torch.testing.assert_close(cam(a[b:b + 1]).flatten(2)[0], E, rtol=1e-10, atol=1e-10)
def test_danet_module_composition_and_no_size_arguments():
    m = _randomize(vb.create_block("danet", 64)).double()
    assert m.pos_attn.alpha.item() != 0 and m.chan_attn.beta.item() != 0
    x = torch.randn(1, 64, 9, 12, dtype=D)
    p = _cna(m.pos_attn(_cna(x, m.pos_reduce)), m.pos_out)
    c = _cna(m.chan_attn(_cna(x, m.chan_reduce)), m.chan_out)
    ref = F.conv2d(p + c, m.proj.weight, m.proj.bias)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert m(torch.randn(1, 64, 3, 20, dtype=D)).shape == (1, 64, 3, 20)
    assert vb.create_block("danet", 64).pos_attn.alpha.item() == 0  # alpha, beta start at 0 (paper)
    for c in (66, 3):  # any channel count: C' = max(1, C // 4), B/C have max(1, C' // 8) channels
        assert vb.create_block("danet", c).eval()(torch.randn(1, c, 5, 6)).shape == (1, c, 5, 6)
    with pytest.raises(ValueError, match="reduction must be a positive number"):
        vb.create_block("danet", 64, reduction=0)
    with pytest.raises(ValueError, match="reduction must be a positive number"):
        vb.create_block("danet", 64, qk_reduction=-1)


def test_danet_position_attention_inference_holds_one_map():
    # without autograd the (B, N, N) map exists once (softmaxed in place); SDPA's math path (query/key width C'/8
    # != value width C') held the energy and its softmax at once
    from visionblocks.testing import peak_memory
    B, C, H, W = 2, 16, 32, 32
    m = vb.create_block("danet", C).eval()
    x = torch.randn(B, C, H, W)
    one_map = B * (H * W) ** 2 * x.element_size()
    # besides the map: the reduced branches (C / 4 channels each), convolution outputs: a few inputs' worth
    with torch.no_grad():
        assert peak_memory(lambda: m(x)) <= one_map + 8 * x.numel() * x.element_size()


def test_danet_position_attention_inference_path_matches_autograd_path():
    pam = _randomize(vb.create_block("danet", 64)).double().pos_attn
    a = torch.randn(2, 16, 6, 7, dtype=D)
    with torch.no_grad():
        y = pam(a)
    torch.testing.assert_close(y, pam(a.requires_grad_()).detach(), rtol=1e-10, atol=1e-10)


def test_danet_channel_attention_gradient_is_accurate_in_float32():
    # post-ReLU features over 784 positions give logits A_j . A_i ~ 2e3; SDPA's CPU flash backward left the input
    # gradient 1.8e-3 off there (float32 rounding alone: ~1e-7)
    from visionblocks.blocks.attention.danet import ChannelAttention
    cam = ChannelAttention()
    with torch.no_grad():
        cam.beta.fill_(0.7)
    torch.manual_seed(0)
    x = torch.randn(2, 128, 28, 28).relu() * 3
    g = torch.randn(2, 128, 28, 28)
    grads = []
    for dtype in (torch.float32, torch.float64):
        xi = x.to(dtype).clone().requires_grad_()
        cam.to(dtype)(xi).backward(g.to(dtype))
        grads.append(xi.grad.double())
    err = float((grads[0] - grads[1]).abs().max() / grads[1].abs().max())
    assert err < 1e-5, err
