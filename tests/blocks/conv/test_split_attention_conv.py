"""Tests of :mod:`visionblocks.blocks.conv.split_attention_conv`."""
import copy

import pytest
import torch
import torch.nn.functional as F

from visionblocks.blocks.conv.split_attention_conv import SplitAttentionConv
from visionblocks import to_channels_last
from visionblocks.testing import randomize_bn_stats

from _reference import bn_eval as bn


D = torch.float64
def reference(m, x):
    """U_{r,k} = ReLU(BN(conv_{r,k}(x_{r,k}))); per cardinal group k an MLP on GAP(sum_r U_{r,k}) gives R logits per
    channel; softmax over r (sigmoid if R=1); V_k = sum_r a_{r,k} U_{r,k}; y = concat_k V_k."""
    R, K, C = m.radix, m.groups, m.out_channels
    cin_blk, c_k, i_k = m.in_channels // (R * K), C // K, m.inter_channels // K
    conv = m.conv.conv
    u = {}
    for r in range(R):
        for k in range(K):
            j = r * K + k                                   # group index of the radix-major grouped convolution
            xs = x[:, j * cin_blk:(j + 1) * cin_blk]
            w = conv.weight[j * c_k:(j + 1) * c_k]
            y = F.conv2d(xs, w, stride=conv.stride, padding=conv.padding)
            full = torch.zeros(x.shape[0], R * C, *y.shape[2:], dtype=D)
            full[:, j * c_k:(j + 1) * c_k] = y
            u[r, k] = F.relu(bn(full, m.conv.bn))[:, j * c_k:(j + 1) * c_k]
    outs = []
    for k in range(K):
        s = sum(u[r, k] for r in range(R)).mean((2, 3))                               # (B, C/K)
        w1 = m.fc1.conv.weight[k * i_k:(k + 1) * i_k, :, 0, 0]
        z = s @ w1.T + m.fc1.conv.bias[k * i_k:(k + 1) * i_k]
        zf = torch.zeros(x.shape[0], m.inter_channels, 1, 1, dtype=D)
        zf[:, k * i_k:(k + 1) * i_k, 0, 0] = z
        z = F.relu(bn(zf, m.fc1.bn))[:, k * i_k:(k + 1) * i_k, 0, 0]
        rows = slice(k * R * c_k, (k + 1) * R * c_k)
        logits = (z @ m.fc2.weight[rows, :, 0, 0].T + m.fc2.bias[rows]).view(-1, R, c_k)
        a = logits.softmax(1) if R > 1 else torch.sigmoid(logits)
        outs.append(sum(a[:, r, :, None, None] * u[r, k] for r in range(R)))
    return torch.cat(outs, 1)
@pytest.mark.parametrize("radix,groups,stride,size", [(2, 1, 1, (8, 9)), (2, 2, 2, (11, 10)), (1, 2, 1, (6, 6)),
                                                      (4, 2, 2, (7, 7))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_per_group_loop(radix, groups, stride, size, channels_last):
    """Also with channels-last weights and input (the block's (B, HW, R, C) path: values, a channels-last output,
    and the gradients of the NCHW form)."""
    torch.manual_seed(0)
    m = SplitAttentionConv(16, 24, 3, stride, groups=groups, radix=radix, min_channels=8).to(D)
    randomize_bn_stats(m, seed=1)
    m.eval()
    x = torch.randn(2, 16, *size, dtype=D)
    ref = reference(m, x)
    m_nchw = copy.deepcopy(m)
    if channels_last:
        to_channels_last(m)
        x = x.contiguous(memory_format=torch.channels_last)
    y = m(x)
    assert y.shape == (2, 24, -(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    if channels_last:
        assert y.is_contiguous(memory_format=torch.channels_last)
        xg, xr = x.clone().requires_grad_(), x.contiguous().requires_grad_()
        m.train(), m_nchw.train()
        y, yr = m(xg), m_nchw(xr)
        torch.testing.assert_close(y, yr, rtol=1e-10, atol=1e-10)
        g = torch.randn_like(yr)
        for a, b in zip(torch.autograd.grad(y, [xg, *m.parameters()], g),
                        torch.autograd.grad(yr, [xr, *m_nchw.parameters()], g)):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
def test_output_is_convex_combination_of_splits():
    torch.manual_seed(0)
    m = SplitAttentionConv(32, 32, radix=2).to(D).eval()
    x = torch.randn(2, 32, 8, 8, dtype=D)
    u = m.conv(x).unflatten(1, (2, 32))
    y = m(x)
    assert (y >= u.amin(1) - 1e-12).all() and (y <= u.amax(1) + 1e-12).all()
def test_paper_attention_width_and_validation():
    assert SplitAttentionConv(64, 64).inter_channels == 32           # max(64 * 2 // 4, 32)
    assert SplitAttentionConv(256, 256).inter_channels == 128
    with pytest.raises(ValueError, match="groups \\* radix"):
        SplitAttentionConv(36, 32, groups=4, radix=2)
    with pytest.raises(ValueError, match="divisible by groups"):
        SplitAttentionConv(30, 32, groups=4, radix=2)
def test_former_keyword_names_still_work():
    with pytest.warns(DeprecationWarning, match="reduction_factor"):
        m = SplitAttentionConv(64, 64, reduction_factor=2, min_inter_channels=16)
    assert m.inter_channels == SplitAttentionConv(64, 64, reduction=2, min_channels=16).inter_channels == 64
    with pytest.raises(TypeError, match="both"):
        SplitAttentionConv(64, 64, reduction_factor=2, reduction=2)


def test_channels_last_float16_does_not_overflow():
    """The channels-last path pools with a mean: a float16 sum over 56x56 positions of ~30 overflows."""
    torch.manual_seed(0)
    m = SplitAttentionConv(64, 64).eval()
    x = torch.randn(2, 64, 56, 56) * 3 + 30
    with torch.no_grad():
        ref = m(x)
        out = to_channels_last(copy.deepcopy(m).half())(x.half().contiguous(memory_format=torch.channels_last))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2 * ref.abs().max().item())
