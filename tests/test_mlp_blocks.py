"""Float64 numerical tests of the MLP-family blocks against references written from the papers' equations."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.testing import randomize_bn_stats

D = torch.float64


def _perturb(m, scale=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return m


def _ln(x, weight, bias, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * weight + bias


def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


# ------------------------------------------------------------------------------------------ MLP-Mixer
def test_mixer_block_matches_transpose_matmul_reference():
    m = _perturb(vb.create_block("mixer_block", 24, 10).double().eval())
    x = torch.randn(3, 10, 24, dtype=D)
    t = m.token_mlp
    # token mixing, written as in the paper: transpose, MLP over the token axis, transpose back
    u = _ln(x, m.norm1.weight, m.norm1.bias, 1e-6).transpose(1, 2)          # (B, C, N)
    u = _gelu(u @ t.fc1.weight.T + t.fc1.bias) @ t.fc2.weight.T + t.fc2.bias
    u = x + u.transpose(1, 2)
    c = m.channel_mlp
    y = u + _gelu(_ln(u, m.norm2.weight, m.norm2.bias, 1e-6) @ c.fc1.weight.T + c.fc1.bias) @ c.fc2.weight.T + c.fc2.bias
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)
    assert t.fc1.out_features == 12 and c.fc1.out_features == 96  # D_S = C/2, D_C = 4C


def test_token_blocks_reject_other_token_counts():
    for name in ("mixer_block", "resmlp_block", "gmlp_block"):
        m = vb.create_block(name, 16, 9)
        with pytest.raises(ValueError, match="9 tokens"):
            m(torch.randn(1, 10, 16))


# ------------------------------------------------------------------------------------------ ResMLP
def test_resmlp_block_matches_equations():
    m = _perturb(vb.create_block("resmlp_block", 16, 7, init_values=0.1).double().eval())
    x = torch.randn(2, 7, 16, dtype=D)
    aff1 = m.norm1.alpha * x + m.norm1.beta
    z = x.clone()
    for b in range(2):  # Z = X + LS1 * (A Aff(X)) with A (N x N) acting on each channel column
        z[b] = x[b] + m.ls1 * (m.token_fc.weight @ aff1[b] + m.token_fc.bias[:, None])
    aff2 = m.norm2.alpha * z + m.norm2.beta
    mlp = _gelu(aff2 @ m.mlp.fc1.weight.T + m.mlp.fc1.bias) @ m.mlp.fc2.weight.T + m.mlp.fc2.bias
    torch.testing.assert_close(m(x), z + m.ls2 * mlp, rtol=1e-12, atol=1e-12)


def test_resmlp_block_init():
    m = vb.create_block("resmlp_block", 16, 7, init_values=1e-5)
    assert torch.all(m.ls1 == 1e-5) and torch.all(m.ls2 == 1e-5)
    assert torch.all(m.norm1.alpha == 1) and torch.all(m.norm1.beta == 0)


# ------------------------------------------------------------------------------------------ gMLP
def test_gmlp_gating_is_identity_on_gated_half_at_init():
    torch.manual_seed(0)
    m = vb.create_block("gmlp_block", 16, 9).double().eval()
    assert torch.all(m.sgu.proj.bias == 1) and m.sgu.proj.weight.abs().max() < 1e-4
    x = torch.randn(2, 9, 16, dtype=D)
    z = _gelu(_ln(x, m.norm.weight, m.norm.bias, 1e-6) @ m.proj_in.weight.T + m.proj_in.bias)
    u = z[..., : z.shape[-1] // 2]
    ffn = x + u @ m.proj_out.weight.T + m.proj_out.bias   # s(Z) = Z1 exactly when W = 0, b = 1
    torch.testing.assert_close(m(x), ffn, rtol=1e-4, atol=1e-4)   # near-zero W: near-identity
    with torch.no_grad():
        m.sgu.proj.weight.zero_()
    torch.testing.assert_close(m(x), ffn, rtol=1e-12, atol=1e-12)


def test_gmlp_block_matches_equations():
    m = _perturb(vb.create_block("gmlp_block", 8, 5, ffn_ratio=2).double().eval())
    x = torch.randn(2, 5, 8, dtype=D)
    z = _gelu(_ln(x, m.norm.weight, m.norm.bias, 1e-6) @ m.proj_in.weight.T + m.proj_in.bias)
    z1, z2 = z[..., :8], z[..., 8:]
    v = _ln(z2, m.sgu.norm.weight, m.sgu.norm.bias, 1e-6)
    gate = torch.einsum("nm,bmc->bnc", m.sgu.proj.weight, v) + m.sgu.proj.bias[None, :, None]
    y = x + (z1 * gate) @ m.proj_out.weight.T + m.proj_out.bias
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)


def test_gmlp_rejects_odd_ffn():
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("gmlp_block", 5, 4, ffn_ratio=1)


# ------------------------------------------------------------------------------------------ sMLP
def test_smlp_block_matches_axial_loops():
    m = _perturb(vb.create_block("smlp_block", 6, (5, 7)).double().eval())
    randomize_bn_stats(m)
    x = torch.randn(2, 6, 5, 7, dtype=D)
    bn = m.norm
    a = (x - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    a = _gelu(a * bn.weight[:, None, None] + bn.bias[:, None, None])
    xh, xw = torch.empty_like(a), torch.empty_like(a)
    for i in range(5):   # row i of the output mixes column entries of all rows j (weights shared)
        xh[:, :, i, :] = sum(m.proj_h.weight[i, j] * a[:, :, j, :] for j in range(5)) + m.proj_h.bias[i]
    for i in range(7):
        xw[:, :, :, i] = sum(m.proj_w.weight[i, j] * a[:, :, :, j] for j in range(7)) + m.proj_w.bias[i]
    cat = torch.cat([a, xh, xw], 1)
    y = torch.einsum("oc,bchw->bohw", m.fuse.weight[:, :, 0, 0], cat)
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)
    assert m.fuse.bias is None


def test_smlp_rejects_other_size():
    m = vb.create_block("smlp_block", 4, (6, 6))
    with pytest.raises(ValueError, match="size"):
        m(torch.randn(1, 4, 6, 7))


# ------------------------------------------------------------------------------------------ ViP
def _vip_reference(m, x):
    """The three permute branches by explicit reshapes, one channel segment at a time (paper Sec. 3.2)."""
    x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
    B, H, W, C = x.shape
    xh, xw = torch.empty_like(x), torch.empty_like(x)
    n = C // H
    for g in range(H):   # segment g: its (H x n) column block is mixed by the C -> C layer
        seg = x[..., g * n:(g + 1) * n].permute(0, 2, 1, 3).reshape(B, W, H * n)
        out = seg @ m.mlp_h.weight.T
        xh[..., g * n:(g + 1) * n] = out.reshape(B, W, H, n).permute(0, 2, 1, 3)
    n = C // W
    for g in range(W):
        seg = x[..., g * n:(g + 1) * n].reshape(B, H, W * n)
        xw[..., g * n:(g + 1) * n] = (seg @ m.mlp_w.weight.T).reshape(B, H, W, n)
    xc = x @ m.mlp_c.weight.T
    a = (xh + xw + xc).mean((1, 2))
    r1, r2 = m.reweight.fc1, m.reweight.fc2
    a = (_gelu(a @ r1.weight.T + r1.bias) @ r2.weight.T + r2.bias).reshape(B, C, 3)
    a = torch.exp(a) / torch.exp(a).sum(-1, keepdim=True)
    y = xh * a[:, None, None, :, 0] + xw * a[:, None, None, :, 1] + xc * a[:, None, None, :, 2]
    return (y @ m.proj.weight.T + m.proj.bias).permute(0, 3, 1, 2)


@pytest.mark.parametrize("size", [(4, 4), (3, 6)])
def test_vip_matches_explicit_permutations(size):
    m = _perturb(vb.create_block("vip", 12, size).double().eval())
    x = torch.randn(2, 12, *size, dtype=D)
    torch.testing.assert_close(m(x), _vip_reference(m, x), rtol=1e-12, atol=1e-12)


def test_vip_validates_segments():
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("vip", 20, (8, 8))


# ------------------------------------------------------------------------------------------ S2-MLPv2
def _shift_by_hand(x, groups):
    """x (B, H, W, C); ``groups`` gives for each channel quarter (axis, +1/-1); borders keep their value."""
    out = x.clone()
    q = x.shape[-1] // 4
    for i, (axis, step) in enumerate(groups):
        sl = slice(i * q, (i + 1) * q)
        n = x.shape[axis]
        for p in range(n):
            src = p - step
            if not 0 <= src < n:
                continue  # border row/column: left as it was
            if axis == 1:
                out[:, p, :, sl] = x[:, src, :, sl]
            else:
                out[:, :, p, sl] = x[:, :, src, sl]
    return out


def test_s2_attention_matches_hand_shifts_and_split_attention():
    m = _perturb(vb.create_block("s2_attention", 8).double().eval())
    x = torch.randn(2, 8, 5, 6, dtype=D)
    t = x.permute(0, 2, 3, 1) @ m.mlp1.weight.T + m.mlp1.bias
    x1, x2, x3 = t[..., :8], t[..., 8:16], t[..., 16:]
    x1 = _shift_by_hand(x1, [(1, 1), (1, -1), (2, 1), (2, -1)])
    x2 = _shift_by_hand(x2, [(2, 1), (2, -1), (1, 1), (1, -1)])
    sa = m.split_attention
    a = (x1 + x2 + x3).sum((1, 2))
    a = (_gelu(a @ sa.mlp1.weight.T) @ sa.mlp2.weight.T).reshape(2, 3, 8)
    a = torch.exp(a) / torch.exp(a).sum(1, keepdim=True)
    y = x1 * a[:, None, None, 0] + x2 * a[:, None, None, 1] + x3 * a[:, None, None, 2]
    y = (y @ m.mlp2.weight.T + m.mlp2.bias).permute(0, 3, 1, 2)
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)


def test_s2_attention_validates_channels():
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("s2_attention", 10)


# ------------------------------------------------------------------------------------------ RepMLP
def _repmlp_reference(m, x):
    """Global, partition and local perceptrons with explicit loops over partitions."""
    B, C, H, W = x.shape
    (hp, wp), (h, w) = m.parts, m.partition
    O, g = m.out_channels, m.groups
    x = x.clone()
    if m.has_global:
        bn = m.gp_bn
        pooled = torch.stack([torch.stack([x[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w].mean((2, 3))
                                           for j in range(wp)], -1) for i in range(hp)], -2)  # (B, C, hp, wp)
        pooled = (pooled - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps) \
            * bn.weight[:, None, None] + bn.bias[:, None, None]
        v = torch.relu(pooled.reshape(B, -1) @ m.fc1.weight.T + m.fc1.bias) @ m.fc2.weight.T + m.fc2.bias
        v = v.reshape(B, C, hp, wp)
        for i in range(hp):
            for j in range(wp):
                x[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w] += v[:, :, i, j, None, None]
    # FC3 as a block-diagonal dense matrix (O*h*w, C*h*w)
    wg = m.fc3.weight[:, :, 0, 0]
    dense = torch.zeros(O * h * w, C * h * w, dtype=x.dtype)
    ro, ri = O * h * w // g, C * h * w // g
    for k in range(g):
        dense[k * ro:(k + 1) * ro, k * ri:(k + 1) * ri] = wg[k * ro:(k + 1) * ro]
    bn = m.fc3_bn
    out = torch.zeros(B, O, H, W, dtype=x.dtype)
    for i in range(hp):
        for j in range(wp):
            p = x[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w]
            y = p.reshape(B, -1) @ dense.T
            y = (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
            y = y.reshape(B, O, h, w)
            for br in m.local.values():
                c, b2 = br.conv, br.bn
                z = F.conv2d(p, c.weight, padding=c.padding, groups=g)  # zero padding inside the partition
                y = y + (z - b2.running_mean[:, None, None]) / torch.sqrt(b2.running_var[:, None, None] + b2.eps) \
                    * b2.weight[:, None, None] + b2.bias[:, None, None]
            out[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w] = y
    return out


def _repmlp(**kw):
    torch.manual_seed(0)
    m = vb.create_block("repmlp_block", 8, (6, 8), partition=(3, 4), **kw)
    return randomize_bn_stats(_perturb(m, 0.1), seed=1).eval()


@pytest.mark.parametrize("out_channels", [8, 12])
def test_repmlp_matches_partition_reference(out_channels):
    m = _repmlp(out_channels=out_channels).double()
    x = torch.randn(2, 8, 6, 8, dtype=D)
    out = m(x)
    assert out.shape == (2, out_channels, 6, 8)  # the requested output channels
    torch.testing.assert_close(out, _repmlp_reference(m, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("out_channels", [8, 12])
def test_repmlp_reparameterize_is_exact(dtype, tol, out_channels):
    m = _repmlp(out_channels=out_channels).to(dtype)
    x = torch.randn(2, 8, 6, 8, dtype=dtype)
    with torch.no_grad():
        before = m(x)
        vb.reparameterize(m)
        after = m(x)
    assert m.is_reparameterized and len(m.local) == 0
    assert isinstance(m.fc3_bn, torch.nn.Identity) and isinstance(m.gp_bn, torch.nn.Identity)
    err = (after - before).abs().max() / before.abs().max()
    assert err < tol, err
    # idempotent, and a deploy-built block loads the folded weights
    vb.reparameterize(m)
    with torch.no_grad():
        assert torch.equal(m(x), after)
    d = vb.create_block("repmlp_block", 8, (6, 8), partition=(3, 4), out_channels=out_channels, deploy=True)
    d = d.to(dtype).eval()
    d.load_state_dict(m.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(d(x), after, rtol=0, atol=0)


def test_repmlp_refuses_training_mode_and_validates():
    m = vb.create_block("repmlp_block", 8, (6, 8), partition=(3, 4))
    with pytest.raises(RuntimeError):
        m.train().reparameterize()
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("repmlp_block", 8, (6, 8), partition=(4, 4))
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("repmlp_block", 6, (6, 8), partition=(3, 4), fc3_groups=4)


def test_repmlp_without_global_perceptron():
    torch.manual_seed(0)
    m = vb.create_block("repmlp_block", 4, (4, 4), partition=(4, 4), fc3_groups=2)
    m = randomize_bn_stats(_perturb(m, 0.1), seed=1).eval().double()
    x = torch.randn(2, 4, 4, 4, dtype=D)
    torch.testing.assert_close(m(x), _repmlp_reference(m, x), rtol=1e-10, atol=1e-10)
    ref = m(x)
    vb.reparameterize(m)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------------------ shared pieces
@pytest.mark.parametrize("bias", [True, False])
def test_token_linear_is_the_linear_layer_along_tokens(bias):
    from visionblocks.layers import token_linear

    lin = _perturb(torch.nn.Linear(7, 5, bias=bias).double())
    x = torch.randn(3, 7, 4, dtype=D, requires_grad=True)
    y = token_linear(x, lin)
    ref = lin(x.transpose(1, 2)).transpose(1, 2)
    assert y.shape == (3, 5, 4)
    torch.testing.assert_close(y, ref, rtol=1e-13, atol=1e-13)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, lin.weight], g)
    ref_grads = torch.autograd.grad(ref, [x, lin.weight], g)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_affine_is_identity_at_init_and_per_channel():
    from visionblocks.layers import Affine

    m = Affine(6).double()
    x = torch.randn(2, 3, 6, dtype=D)
    torch.testing.assert_close(m(x), x, rtol=0, atol=0)
    _perturb(m)
    torch.testing.assert_close(m(x), x * m.alpha + m.beta, rtol=1e-14, atol=1e-14)


def test_mlp_blocks_use_the_shared_layers():
    from visionblocks.layers import Mlp

    assert type(vb.create_block("mixer_block", 16, 4).channel_mlp) is Mlp
    assert type(vb.create_block("resmlp_block", 16, 4).mlp) is Mlp
    vip = vb.create_block("weighted_permute_mlp", 48, (8, 8))
    assert type(vip.reweight) is Mlp and vip.reweight.fc1.out_features == 12    # C / 4 (paper)
    assert vb.create_block("weighted_permute_mlp", 48, (8, 8), rd_channels=5).reweight.fc1.out_features == 5
    with pytest.raises(ValueError, match="tokens"):
        vb.create_block("gmlp_block", 16, 4)(torch.randn(1, 5, 16))
