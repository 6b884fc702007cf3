"""Numerical tests of the channel/spatial attention blocks (sk, bam, danet, pyramid_split_attention,
shuffle_attention, sge, double_attention) against references written here from the papers' equations, in
float64."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.testing import randomize_bn_stats
from _reference import bn_eval as _bn

D = torch.float64


def _randomize(m, seed=0, scale=0.3):
    """Random parameters everywhere (zero-initialised gates included) and random BN statistics, eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    randomize_bn_stats(m, seed=seed + 1)
    return m.eval()



def _cna(x, unit, stride=1, padding=None, dilation=1, groups=1, act=True):
    conv = unit.conv
    pad = conv.padding if padding is None else padding
    y = F.conv2d(x, conv.weight, conv.bias, conv.stride, pad, conv.dilation, conv.groups)
    y = _bn(y, unit.bn) if isinstance(unit.bn, torch.nn.BatchNorm2d) else y
    return torch.relu(y) if act else y


# --------------------------------------------------------------------------------------------- SK
def _sk_reference(m, x):
    """Eqs. 1-6 of SKNet: U = sum U_m, s = GAP(U), z = ReLU(BN(W s)), a = softmax over branches, V = sum a U."""
    us = []
    for i, br in enumerate(m.branches):
        d = i + 1
        c = br.conv
        assert c.dilation == (d, d) and c.padding == (d, d) and c.kernel_size == (3, 3)
        us.append(torch.relu(_bn(F.conv2d(x, c.weight, None, c.stride, d, d, c.groups), br.bn)))
    s = sum(us).mean((2, 3))                                                      # (B, C)
    w = m.fuse.conv.weight[:, :, 0, 0]                                            # (d, C)
    z = torch.relu(_bn(s @ w.T, m.fuse.bn))                                       # (B, d)
    a_mats = m.select.weight[:, :, 0, 0].reshape(len(us), m.out_channels, -1)    # M x (C, d)
    logits = torch.stack([z @ a.T for a in a_mats])                               # (M, B, C)
    e = torch.exp(logits - logits.max(0).values)
    weights = e / e.sum(0)
    return sum(weights[i][:, :, None, None] * us[i] for i in range(len(us))), us, weights


@pytest.mark.parametrize("stride,out_channels", [(1, None), (2, 128)])
def test_sk_matches_paper_equations(stride, out_channels):
    m = _randomize(vb.create_block("sk", 64, out_channels=out_channels, stride=stride)).double()
    x = torch.randn(2, 64, 11, 14, dtype=D)
    ref, _, _ = _sk_reference(m, x)
    out = m(x)
    assert out.shape == (2, out_channels or 64, math.ceil(11 / stride), math.ceil(14 / stride))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_sk_one_branch_zeroed_is_other_branch_times_its_weight():
    m = _randomize(vb.create_block("sk", 64)).double()
    with torch.no_grad():  # branch 2 outputs ReLU(0 * ... + 0) = 0
        m.branches[1].bn.weight.zero_()
        m.branches[1].bn.bias.zero_()
    x = torch.randn(2, 64, 9, 10, dtype=D)
    u0 = torch.relu(_bn(F.conv2d(x, m.branches[0].conv.weight, None, 1, 1, 1, 32), m.branches[0].bn))
    s = u0.mean((2, 3))
    z = torch.relu(_bn(s @ m.fuse.conv.weight[:, :, 0, 0].T, m.fuse.bn))
    a = m.select.weight[:, :, 0, 0]
    l0, l1 = z @ a[:64].T, z @ a[64:].T
    w0 = torch.exp(l0) / (torch.exp(l0) + torch.exp(l1))
    torch.testing.assert_close(m(x), u0 * w0[:, :, None, None], rtol=1e-10, atol=1e-10)


def test_sk_paper_widths_and_validation():
    m = vb.create_block("sk", 256)
    assert m.fuse.conv.out_channels == 32  # d = max(C/r, L) = max(16, 32)
    assert all(b.conv.groups == 32 for b in m.branches)
    assert vb.create_block("sk", 1024).fuse.conv.out_channels == 64
    x = torch.randn(1, 64, 7, 9)
    assert vb.create_block("sk", 64).eval()(x).shape == x.shape
    with pytest.raises(ValueError, match="divisible by groups"):
        vb.create_block("sk", 48)


# --------------------------------------------------------------------------------------------- BAM
def test_bam_matches_paper_equations():
    m = _randomize(vb.create_block("bam", 64)).double()
    x = torch.randn(2, 64, 13, 10, dtype=D)
    cg, sg = m.channel_gate, m.spatial_gate
    s = x.mean((2, 3))                                                             # (B, C)
    w0, b0 = cg.mlp.fc1.weight[:, :, 0, 0], cg.mlp.fc1.bias
    w1, b1 = cg.mlp.fc2.weight[:, :, 0, 0], cg.mlp.fc2.bias
    mc = _bn(torch.relu(s @ w0.T + b0) @ w1.T + b1, cg.bn)[:, :, None, None]     # Eq. 2
    f = _cna(x, sg.body[0])
    for unit in sg.body[1:3]:
        assert unit.conv.dilation == (4, 4)
        f = _cna(f, unit, padding=4)
    ms = _bn(F.conv2d(f, sg.body[3].weight, sg.body[3].bias), sg.bn)            # Eq. 3, (B, 1, H, W)
    ref = x + x * torch.sigmoid(mc + ms)                                           # Eqs. 1, 4
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (8, 8), (31, 17)])
def test_bam_keeps_any_size_and_batch_one_eval(size):
    m = vb.create_block("bam", 32).eval()
    x = torch.randn(1, 32, *size)
    with torch.no_grad():
        assert m(x).shape == x.shape


# --------------------------------------------------------------------------------------------- DANet
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


# --------------------------------------------------------------------------------------------- PSA
@pytest.mark.parametrize("stride", [1, 2])
def test_psa_matches_paper_equations(stride):
    m = _randomize(vb.create_block("pyramid_split_attention", 64, stride=stride), scale=0.5).double()
    x = torch.randn(2, 64, 9, 12, dtype=D)
    feats = []
    for conv, k, g in zip(m.convs, (3, 5, 7, 9), (1, 4, 8, 16)):
        assert conv.weight.shape == (16, 64 // g, k, k) and conv.groups == g
        feats.append(F.conv2d(x, conv.weight, None, stride, k // 2, 1, g))        # F_i = Conv(k_i, G_i)(X)
    w0, b0 = m.se.fc1.weight[:, :, 0, 0], m.se.fc1.bias
    w1, b1 = m.se.fc2.weight[:, :, 0, 0], m.se.fc2.bias
    zs = [torch.sigmoid(torch.relu(f.mean((2, 3)) @ w0.T + b0) @ w1.T + b1) for f in feats]  # Z_i (B, C/S)
    denom = sum(torch.exp(z) for z in zs)
    ref = torch.cat([f * (torch.exp(z) / denom)[:, :, None, None] for f, z in zip(feats, zs)], dim=1)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)


def test_psa_registers_parameters_and_backward():
    m = vb.create_block("pyramid_split_attention", 64)
    n_conv = sum(64 * 16 // g * k * k for k, g in zip((3, 5, 7, 9), (1, 4, 8, 16)))
    n_se = 16 * 1 + 1 + 1 * 16 + 16
    assert sum(p.numel() for p in m.parameters()) == n_conv + n_se
    x = torch.randn(2, 64, 8, 8, requires_grad=True)
    m(x).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("pyramid_split_attention", 40)


# --------------------------------------------------------------------------------------------- SA
def test_shuffle_attention_gates_by_hand():
    G = 4
    m = _randomize(vb.create_block("shuffle_attention", 32, groups=G), scale=0.8).double()
    x = torch.randn(2, 32, 5, 7, dtype=D)
    C, half = 32, 32 // (2 * G)
    y = torch.empty_like(x)
    for g in range(G):
        xg = x[:, g * C // G:(g + 1) * C // G]
        x1, x2 = xg[:, :half], xg[:, half:]
        s = x1.mean((2, 3), keepdim=True)
        y1 = x1 * torch.sigmoid(m.cweight * s + m.cbias)                            # channel attention
        mu = x2.mean((2, 3), keepdim=True)
        var = ((x2 - mu) ** 2).mean((2, 3), keepdim=True)
        gn = (x2 - mu) / torch.sqrt(var + 1e-5) * m.gn.weight.view(1, -1, 1, 1) + m.gn.bias.view(1, -1, 1, 1)
        y2 = x2 * torch.sigmoid(m.sweight * gn + m.sbias)                           # spatial attention
        y[:, g * C // G:(g + 1) * C // G] = torch.cat([y1, y2], 1)
    ref = torch.empty_like(y)
    for j in range(C // 2):  # channel shuffle with 2 groups: out[2j + k] = y[k * C/2 + j]
        for k in range(2):
            ref[:, 2 * j + k] = y[:, k * C // 2 + j]
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert sum(p.numel() for p in vb.create_block("shuffle_attention", 256).parameters()) == 3 * 256 // 64


def test_shuffle_attention_and_sge_validate_groups():
    with pytest.raises(ValueError, match=r"channels \(96\) must be divisible by 2 \* groups \(128\)"):
        vb.create_block("shuffle_attention", 96)
    with pytest.raises(ValueError, match=r"channels \(96\) must be divisible by groups \(64\)"):
        vb.create_block("sge", 96)


# --------------------------------------------------------------------------------------------- SGE
def test_sge_gates_by_hand():
    G = 8
    m = _randomize(vb.create_block("sge", 32, groups=G), scale=1.0).double()
    x = torch.randn(2, 32, 6, 5, dtype=D)
    ref = torch.empty_like(x)
    cg = 32 // G
    for b in range(2):
        for g in range(G):
            xg = x[b, g * cg:(g + 1) * cg].flatten(1)                               # (C/G, m)
            gvec = xg.mean(1)                                                        # global feature g
            c = gvec @ xg                                                            # c_i = g . x_i
            mu, sigma = c.mean(), torch.sqrt(((c - c.mean()) ** 2).mean())
            a = m.weight.flatten()[g] * (c - mu) / (sigma + 1e-5) + m.bias.flatten()[g]
            ref[b, g * cg:(g + 1) * cg] = (xg * torch.sigmoid(a)).reshape(cg, 6, 5)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert torch.isfinite(vb.create_block("sge", 128).eval()(torch.randn(1, 128, 1, 1))).all()


# --------------------------------------------------------------------------------------------- A2
def test_double_attention_by_einsums():
    m = _randomize(vb.create_block("double_attention", 32), scale=0.5).double()
    x = torch.randn(2, 32, 7, 6, dtype=D)
    X = x.flatten(2)                                                                # (B, C, N)
    lin = lambda conv: torch.einsum("oc,bcn->bon", conv.weight[:, :, 0, 0], X) + conv.bias[None, :, None]
    A, Bt, Vt = lin(m.phi), lin(m.theta), lin(m.rho)
    Bn = torch.exp(Bt) / torch.exp(Bt).sum(2, keepdim=True)       # attention maps: over the positions
    Vn = torch.exp(Vt) / torch.exp(Vt).sum(1, keepdim=True)       # attention vectors: over the n maps
    Gd = torch.einsum("bmn,bkn->bmk", A, Bn)                      # G = A B^T
    Z = torch.einsum("bmk,bkn->bmn", Gd, Vn)                      # z_i = G v_i
    ref = X + torch.einsum("cm,bmn->bcn", m.proj.weight[:, :, 0, 0], Z) + m.proj.bias[None, :, None]
    torch.testing.assert_close(m(x).flatten(2), ref, rtol=1e-10, atol=1e-10)
    assert (m.c_m, m.c_n) == (8, 8)


# ------------------------------------------------------------------------------- bottleneck widths, ConvMlp
def test_rd_channels_overrides_reduction_in_every_gate():
    """One vocabulary: ``reduction`` (C // r), ``rd_channels`` (explicit width, keyword only)."""
    assert vb.create_block("bam", 64).channel_gate.mlp.fc1.out_channels == 4
    bam = vb.create_block("bam", 64, rd_channels=10)
    assert bam.channel_gate.mlp.fc1.out_channels == bam.spatial_gate.body[0].conv.out_channels == 10
    assert vb.create_block("cbam", 64, rd_channels=6).channel_gate.mlp.fc1.out_channels == 6
    assert vb.create_block("pyramid_split_attention", 128).se.fc1.out_channels == 2     # 32 // 16
    assert vb.create_block("pyramid_split_attention", 128, rd_channels=5).se.fc1.out_channels == 5
    assert vb.create_block("coord_attention", 64, rd_channels=5).conv1.out_channels == 5
    assert vb.create_block("danet", 64, reduction=2).pos_attn.conv_b.out_channels == 4   # (64 // 2) // 8
    with pytest.raises(ValueError, match="reduction must be a positive number"):
        vb.create_block("cbam", 64, reduction=0)


def test_conv_mlp_on_vectors_equals_on_1x1_maps():
    from visionblocks.layers import ConvMlp
    from visionblocks.layers import pointwise_linear
    m = _randomize(ConvMlp(6, 3, 5, act_layer="relu")).double()
    s = torch.randn(4, 2, 6, dtype=D)                     # any leading dimensions
    torch.testing.assert_close(m.forward_vector(s), m(s.reshape(8, 6, 1, 1)).reshape(4, 2, 5), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="1x1 convolution without groups"):
        pointwise_linear(s, torch.nn.Conv2d(6, 6, 3))
