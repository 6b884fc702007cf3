"""Numerical tests (float64) of the spatial/coordinate attention blocks against independent references
written from the papers' equations: triplet attention, coordinate attention, polarized self-attention,
CoT, the ParNet RepVGG-SSE block and the CSRA head."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.testing import randomize_bn_stats
from _reference import bn_eval as _bn


def _rand_params(m, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return m



def _build(name, *args, **kwargs):
    m = vb.create_block(name, *args, **kwargs)
    _rand_params(m)
    randomize_bn_stats(m, seed=1)
    return m.double().eval()


# ------------------------------------------------------------------------------------------- triplet
def _triplet_reference(x, m):
    """The paper's three rotated branches, literally: rotate, Z-pool [max; mean], conv7x7, BN, sigmoid,
    multiply, rotate back; average."""
    def branch(t, gate):
        z = torch.cat([t.max(1, keepdim=True).values, t.mean(1, keepdim=True)], dim=1)
        k = gate.conv.weight
        s = F.conv2d(z, k, padding=k.shape[-1] // 2)
        return t * torch.sigmoid(_bn(s, gate.bn))
    out_cw = branch(x.permute(0, 2, 1, 3), m.gate_cw).permute(0, 2, 1, 3)   # H plays the channels
    out_hc = branch(x.permute(0, 3, 2, 1), m.gate_hc).permute(0, 3, 2, 1)   # W plays the channels
    out_hw = branch(x, m.gate_hw)
    return (out_cw + out_hc + out_hw) / 3


def test_triplet_matches_rotated_branches():
    m = _build("triplet_attention", 12)
    x = torch.randn(2, 12, 9, 11, dtype=torch.float64)
    torch.testing.assert_close(m(x), _triplet_reference(x, m), rtol=1e-10, atol=1e-12)


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


# ------------------------------------------------------------------------------------------- coordinate
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


# ------------------------------------------------------------------------------------------- PSA
def _softmax_loop(v):
    e = [math.exp(float(t)) for t in v]
    s = sum(e)
    return torch.tensor([t / s for t in e], dtype=torch.float64)


def _psa_channel_ref(x, g):
    """A^ch = sigmoid(LN(W_z (W_v x) softmax(W_q x))) by explicit softmax, per sample."""
    out = []
    for xb in x:
        C, H, W = xb.shape
        xf = xb.reshape(C, H * W)
        v = g.wv.weight[:, :, 0, 0] @ xf                       # (C/2, HW)
        q = _softmax_loop(g.wq.weight[0, :, 0, 0] @ xf)        # (HW,)
        z = g.wz.weight[:, :, 0, 0] @ (v @ q)                  # (C,)
        mu, var = z.mean(), z.var(unbiased=False)
        z = (z - mu) / torch.sqrt(var + g.ln.eps) * g.ln.weight + g.ln.bias
        out.append(torch.sigmoid(z))
    return torch.stack(out)[:, :, None, None]


def _psa_spatial_ref(x, g):
    """A^sp = sigmoid(softmax(GAP(W_q x))^T W_v x) by explicit softmax, per sample."""
    out = []
    for xb in x:
        C, H, W = xb.shape
        xf = xb.reshape(C, H * W)
        q = _softmax_loop((g.wq.weight[:, :, 0, 0] @ xf).mean(1))   # (C/2,)
        v = g.wv.weight[:, :, 0, 0] @ xf                             # (C/2, HW)
        out.append(torch.sigmoid(q @ v).reshape(1, H, W))
    return torch.stack(out)


def test_psa_branches_by_explicit_softmax():
    m = _build("polarized_attention_parallel", 16)
    with torch.no_grad():
        m.channel_gate.ln.weight.copy_(torch.rand(16, dtype=torch.float64) + 0.5)
        m.channel_gate.ln.bias.copy_(torch.randn(16, dtype=torch.float64))
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    a_ch, a_sp = _psa_channel_ref(x, m.channel_gate), _psa_spatial_ref(x, m.spatial_gate)
    torch.testing.assert_close(m.channel_gate(x), a_ch, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m.spatial_gate(x), a_sp, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m(x), x * a_ch + x * a_sp, rtol=1e-10, atol=1e-12)


def test_psa_sequential_composition():
    m = _build("polarized_attention_sequential", 8)
    x = torch.randn(3, 8, 4, 7, dtype=torch.float64)
    z = x * _psa_channel_ref(x, m.channel_gate)
    torch.testing.assert_close(m(x), z * _psa_spatial_ref(z, m.spatial_gate), rtol=1e-10, atol=1e-12)


def test_psa_validates_reduction():
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("polarized_attention_parallel", 10, reduction=4)


# ------------------------------------------------------------------------------------------- CoT
def _cot_reference(x, m):
    B, C, H, W = x.shape
    k = m.kernel_size
    g = C // m.share_planes
    # static context K1 = ReLU(BN(grouped conv_kxk(x)))
    kc = m.key_embed.conv
    k1 = torch.relu(_bn(F.conv2d(x, kc.weight, padding=k // 2, groups=kc.groups), m.key_embed.bn))
    # values V = BN(W_v x)
    v = _bn(torch.einsum("oc,bchw->bohw", m.value_embed.conv.weight[:, :, 0, 0], x), m.value_embed.bn)
    # attention A = GN(W_delta ReLU(BN(W_theta [x; K1])))
    e0, e1 = m.attn_embed
    gn = e1.bn
    t = torch.relu(_bn(torch.einsum("oc,bchw->bohw", e0.conv.weight[:, :, 0, 0], torch.cat([x, k1], 1)), e0.bn))
    a = torch.einsum("oc,bchw->bohw", e1.conv.weight[:, :, 0, 0], t) + e1.conv.bias[:, None, None]
    a = a.view(B, g, -1, H, W)
    mu = a.mean((2, 3, 4), keepdim=True)
    var = a.var((2, 3, 4), unbiased=False, keepdim=True)
    a = ((a - mu) / torch.sqrt(var + gn.eps)).view(B, -1, H, W) * gn.weight[:, None, None] + gn.bias[:, None, None]
    a = a.view(B, g, k * k, H, W)
    # local aggregation, by explicit loops over the k x k offsets; channel c uses kernel group c mod C/s
    vp = F.pad(v, (k // 2,) * 4)
    agg = torch.zeros_like(v)
    for c in range(C):
        for di in range(k):
            for dj in range(k):
                agg[:, c] += a[:, c % g, di * k + dj] * vp[:, c, di:di + H, dj:dj + W]
    k2 = F.silu(_bn(agg, m.bn))
    # split-attention fusion over the two contexts
    f0, f1 = m.fuse
    s = (k1 + k2).mean((2, 3))
    s = torch.relu(_bn(s @ f0.conv.weight[:, :, 0, 0].T + f0.conv.bias, f0.bn))
    s = (s @ f1.weight[:, :, 0, 0].T + f1.bias).view(B, C, 2)
    p = torch.exp(s) / torch.exp(s).sum(-1, keepdim=True)
    return k2 * p[:, :, 0, None, None] + k1 * p[:, :, 1, None, None]


def test_cot_matches_reference():
    m = _build("cot", 16)
    x = torch.randn(2, 16, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(m(x), _cot_reference(x, m), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("offset", [(0, 0), (1, 2), (2, 0)])
def test_cot_dynamic_kernel_is_a_shift_at_chosen_weights(offset):
    """With the GroupNorm's scale at 0 and its bias a one-hot kernel at offset (di, dj), every value
    channel is aggregated with that kernel: K2 = SiLU(BN(V shifted by (di - 1, dj - 1), zero padded))."""
    m = _build("cot", 16)
    gn = m.attn_embed[1].bn
    di, dj = offset
    with torch.no_grad():
        gn.weight.zero_()
        bias = torch.zeros(gn.num_groups, 9, dtype=torch.float64)
        bias[:, di * 3 + dj] = 1.0
        gn.bias.copy_(bias.flatten())
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    seen = {}
    h = m.bn.register_forward_hook(lambda mod, inp, out: seen.update(agg=inp[0]))
    m(x)
    h.remove()
    v = m.value_embed(x)
    ref = F.pad(v, (1, 1, 1, 1))[:, :, di:di + 5, dj:dj + 6]
    torch.testing.assert_close(seen["agg"], ref, rtol=1e-12, atol=1e-12)


def test_cot_bottleneck_widths_and_deprecated_names():
    m = vb.create_block("cot", 64)
    assert m.attn_embed[0].conv.out_channels == 32           # 2C -> C / embed_reduction (paper: 2)
    assert m.fuse[0].conv.out_channels == 32                 # max(2C // reduction, min_channels) = max(32, 32)
    assert vb.create_block("cot", 128).fuse[0].conv.out_channels == 64
    assert vb.create_block("cot", 64, rd_channels=8).fuse[0].conv.out_channels == 8
    with pytest.warns(DeprecationWarning, match="'factor' is deprecated, use 'embed_reduction'"):
        old = vb.create_block("cot", 32, factor=4, min_attn_channels=24)
    assert old.attn_embed[0].conv.out_channels == 8 and old.fuse[0].conv.out_channels == 24
    with pytest.raises(TypeError, match="both"):
        vb.create_block("cot", 64, factor=4, embed_reduction=4)


def test_cot_keeps_shape_and_validates():
    m = vb.create_block("cot", 32).eval()
    assert m(torch.randn(1, 32, 7, 10)).shape == (1, 32, 7, 10)
    with pytest.raises(ValueError, match="share_planes"):
        vb.create_block("cot", 36)
    with pytest.raises(ValueError, match="odd"):
        vb.create_block("cot", 32, kernel_size=2)


# ------------------------------------------------------------------------------------------- ParNet
def test_parnet_attention_matches_equations():
    m = _build("repvgg_sse_block", 8)
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    b3 = _bn(F.conv2d(x, m.conv.body.conv3x3.conv.weight, padding=1), m.conv.body.conv3x3.bn)
    b1 = _bn(F.conv2d(x, m.conv.body.conv1x1.conv.weight), m.conv.body.conv1x1.bn)
    s = _bn(x, m.skip_bn)
    gate = torch.sigmoid(torch.einsum("oc,bc->bo", m.sse_fc.weight[:, :, 0, 0], s.mean((2, 3))))
    ref = b3 + b1 + s * gate[:, :, None, None]
    ref = ref * torch.sigmoid(ref)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-12)


def test_parnet_attention_reparameterize_keeps_output():
    m = _build("repvgg_sse_block", 8)
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    ref = m(x)
    vb.reparameterize(m)
    assert m.is_reparameterized and not hasattr(m.conv.body, "conv1x1")
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    fresh = vb.create_block("parnet_attention", 8, deploy=True).double().eval()  # the former name resolves too
    fresh.load_state_dict(m.state_dict())
    torch.testing.assert_close(fresh(x), ref, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------------------- CSRA
def _csra_reference(x, m):
    B, C, H, W = x.shape
    out = torch.zeros(B, m.num_classes, dtype=torch.float64)
    for head in m.heads:
        w = head.classifier.weight[:, :, 0, 0]
        T = head.temperature
        for b in range(B):
            for k in range(m.num_classes):
                norm = math.sqrt(sum(float(t) ** 2 for t in w[k]))
                s = [float((w[k] * x[b, :, i, j]).sum()) / norm for i in range(H) for j in range(W)]
                base = sum(s) / len(s)
                if math.isinf(T):
                    att = max(s)
                else:
                    e = [math.exp(T * v) for v in s]
                    att = sum(v * ei for v, ei in zip(s, e)) / sum(e)
                out[b, k] += base + head.lam * att
    return out


@pytest.mark.parametrize("num_heads,lam", [(1, 0.1), (2, 0.3), (4, 0.5)])
def test_csra_logits_by_loops(num_heads, lam):
    m = _build("residual_attention", 6, 4, num_heads=num_heads, lam=lam)
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(m(x), _csra_reference(x, m), rtol=1e-10, atol=1e-12)


def test_csra_lambda_zero_is_average_pooling_of_normalised_classifier():
    m = _build("residual_attention", 6, 3, lam=0.0)
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64)
    w = m.heads[0].classifier.weight[:, :, 0, 0]
    torch.testing.assert_close(m(x), x.mean((2, 3)) @ (w / w.norm(dim=1, keepdim=True)).T)


def test_csra_validates():
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("residual_attention", 8, 5, num_heads=3)
