"""Numerical tests of the transformer-style token mixers against float64 references written from the papers'
equations (explicit loops / sums, independent of the blocks' vectorized code)."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

D = torch.float64


def _block(name, *args, **kwargs):
    torch.manual_seed(0)
    m = vb.create_block(name, *args, **kwargs).double().eval()
    with torch.no_grad():  # no parameter left at a special initial value (zeros, ones)
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return m


def _softmax_rows(a):
    e = torch.exp(a - a.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def _mha_reference(x, wq, wk, wv, h, bq=None, bk=None, bv=None):
    """Explicit per-head softmax(Q K^T / sqrt(d)) V, concatenated: (B, N, C)."""
    B, N, C = x.shape
    d = C // h
    q = x @ wq.T + (0 if bq is None else bq)
    k = x @ wk.T + (0 if bk is None else bk)
    v = x @ wv.T + (0 if bv is None else bv)
    out = torch.zeros(B, N, C, dtype=x.dtype)
    for b in range(B):
        for i in range(h):
            sl = slice(i * d, (i + 1) * d)
            a = _softmax_rows(q[b, :, sl] @ k[b, :, sl].T / math.sqrt(d))
            out[b, :, sl] = a @ v[b, :, sl]
    return out


# ------------------------------------------------------------------------------------------ self-attention
def test_self_attention_sdpa_matches_explicit_softmax():
    m = _block("self_attention", 32, num_heads=4, qkv_bias=True, proj_bias=True)
    x = torch.randn(2, 7, 32, dtype=D)
    wq, wk, wv = m.qkv.weight.chunk(3, 0)
    bq, bk, bv = m.qkv.bias.chunk(3, 0)
    ref = _mha_reference(x, wq, wk, wv, 4, bq, bk, bv) @ m.proj.weight.T + m.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)


def test_self_attention_paper_defaults_and_validation():
    m = vb.create_block("self_attention", 64)
    assert m.num_heads == 8 and m.qkv.bias is None and m.proj.bias is None
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("self_attention", 60, num_heads=8)


def test_simplified_self_attention_reference():
    m = _block("simplified_self_attention", 24, num_heads=3)
    x = torch.randn(2, 6, 24, dtype=D)
    eye = torch.eye(24, dtype=D)
    ref = _mha_reference(x, eye, eye, eye, 3) @ m.proj.weight.T + m.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert [n for n, _ in m.named_parameters()] == ["proj.weight", "proj.bias"]
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("simplified_self_attention", 20, num_heads=3)


# ------------------------------------------------------------------------------------------ external attention
def test_external_attention_double_normalization():
    m = _block("external_attention", 16, memory_units=5)
    x = torch.randn(2, 9, 16, dtype=D)
    f = x @ m.query.weight.T + m.query.bias
    B, N, S = 2, 9, 5
    a = torch.zeros(B, N, S, dtype=D)
    for b in range(B):
        for i in range(N):
            for j in range(S):
                a[b, i, j] = (f[b, i] * m.mk.weight[j]).sum()
    alpha = torch.zeros_like(a)
    for b in range(B):
        for j in range(S):  # softmax over the tokens (column-wise)
            e = torch.exp(a[b, :, j])
            alpha[b, :, j] = e / e.sum()
        for i in range(N):  # l1 over the memory units (row-wise)
            alpha[b, i] = alpha[b, i] / (alpha[b, i].sum() + 1e-9)
    ref = alpha @ m.mv.weight.T
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert vb.create_block("external_attention", 32).memory_units == 64  # paper: S = 64


# ------------------------------------------------------------------------------------------ UFO-ViT
def test_ufo_cross_normalization_reference():
    m = _block("ufo_attention", 16, num_heads=2)
    x = torch.randn(2, 11, 16, dtype=D)
    q, k, v = (x @ m.qkv.weight.T + m.qkv.bias).chunk(3, -1)
    B, N, C, h, d = 2, 11, 16, 2, 8
    out = torch.zeros(B, N, C, dtype=D)
    for b in range(B):
        for i in range(h):
            sl = slice(i * d, (i + 1) * d)
            kv = torch.zeros(d, d, dtype=D)
            for t in range(N):  # K^T V as a sum of outer products
                kv += torch.outer(k[b, t, sl], v[b, t, sl])
            kv_n = torch.stack([m.gamma_kv[i, 0, 0] * r / torch.sqrt((r * r).sum()) for r in kv])
            for t in range(N):
                qn = m.gamma_q[i, 0, 0] * q[b, t, sl] / torch.sqrt((q[b, t, sl] ** 2).sum())
                out[b, t, sl] = qn @ kv_n
    ref = out @ m.proj.weight.T + m.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("ufo_attention", 18, num_heads=4)


# ------------------------------------------------------------------------------------------ AFT
def _aft_reference(q, k, v, w):
    """Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w_tt') V_t' / sum_t' exp(K_t' + w_tt'), as explicit sums."""
    B, T, C = q.shape
    y = torch.zeros(B, T, C, dtype=q.dtype)
    for b in range(B):
        for t in range(T):
            num = torch.zeros(C, dtype=q.dtype)
            den = torch.zeros(C, dtype=q.dtype)
            for s in range(T):
                e = torch.exp(k[b, s] + w[t, s])
                num += e * v[b, s]
                den += e
            y[b, t] = torch.sigmoid(q[b, t]) * num / den
    return y


def test_aft_full_weighted_average():
    m = _block("aft_full", 8, 10)
    x = torch.randn(2, 10, 8, dtype=D) * 2
    q, k, v = (x @ m.qkv.weight.T + m.qkv.bias).chunk(3, -1)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _aft_reference(q, k, v, m.pos_bias), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="tokens"):
        m(torch.randn(2, 11, 8, dtype=D))


def test_aft_full_is_stable_for_large_logits():
    m = _block("aft_full", 8, 6)
    with torch.no_grad():
        m.pos_bias.mul_(200)
        m.qkv.weight.mul_(100)
        y = m(torch.randn(1, 6, 8, dtype=D))
    assert torch.isfinite(y).all()


def test_aft_local_band():
    T, s = 12, 3
    m = _block("aft_local", 8, T, window_size=s)
    x = torch.randn(2, T, 8, dtype=D)
    q, k, v = (x @ m.qkv.weight.T + m.qkv.bias).chunk(3, -1)
    w = torch.zeros(T, T, dtype=D)
    for t in range(T):
        for u in range(T):
            if abs(t - u) < s:
                w[t, u] = m.pos_bias[t, u]
    with torch.no_grad():
        torch.testing.assert_close(m(x), _aft_reference(q, k, v, w), rtol=1e-10, atol=1e-10)
    assert vb.create_block("aft_local", 8, 64).window_size == 32
    with pytest.raises(ValueError, match="tokens"):
        m(torch.randn(1, 5, 8, dtype=D))


def test_aft_simple_reference_and_any_length():
    m = _block("aft_simple", 8)
    for n in (1, 7, 13):
        x = torch.randn(2, n, 8, dtype=D)
        q, k, v = (x @ m.qkv.weight.T + m.qkv.bias).chunk(3, -1)
        with torch.no_grad():
            torch.testing.assert_close(m(x), _aft_reference(q, k, v, torch.zeros(n, n, dtype=D)),
                                       rtol=1e-10, atol=1e-10)


def test_aft_conv_reference():
    C, h, s, H, W = 6, 3, 3, 5, 4
    m = _block("aft_conv", C, num_heads=h, kernel_size=s)
    x = torch.randn(2, C, H, W, dtype=D)
    qkv = torch.einsum("oc,bchw->bohw", m.qkv.weight[:, :, 0, 0], x) + m.qkv.bias[None, :, None, None]
    q, k, v = qkv.chunk(3, 1)
    d = C // h
    y = torch.zeros_like(x)
    for i in range(h):
        raw = m.pos_bias[i, 0]
        mu = raw.sum() / raw.numel()
        sd = torch.sqrt(((raw - mu) ** 2).sum() / raw.numel())
        w = m.gamma[i, 0, 0, 0] * (raw - mu) / sd + m.beta[i, 0, 0, 0]
        for c in range(i * d, (i + 1) * d):
            for b in range(2):
                for r in range(H):
                    for cc in range(W):
                        num = den = 0.0
                        for r2 in range(H):
                            for c2 in range(W):
                                dr, dc = r2 - r, c2 - cc
                                bias = w[dr + s // 2, dc + s // 2] if abs(dr) <= s // 2 and abs(dc) <= s // 2 else 0.0
                                e = torch.exp(k[b, c, r2, c2] + bias)
                                num = num + e * v[b, c, r2, c2]
                                den = den + e
                        y[b, c, r, cc] = torch.sigmoid(q[b, c, r, cc]) * num / den
    with torch.no_grad():
        torch.testing.assert_close(m(x), y, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("aft_conv", 48, num_heads=32)
    with pytest.raises(ValueError, match="odd"):
        vb.create_block("aft_conv", 64, kernel_size=4)


# ------------------------------------------------------------------------------------------ EMSA (ResT)
def _layer_norm(x, weight, bias, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * weight + bias


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


# ------------------------------------------------------------------------------------------ MUSE
def test_muse_reference():
    C, h, N = 12, 3, 9
    m = _block("muse", C, num_heads=h, kernel_sizes=(1, 3, 5))
    x = torch.randn(2, N, C, dtype=D)
    wq, wk, wv = m.qkv.weight.chunk(3, 0)
    bq, bk, bv = m.qkv.bias.chunk(3, 0)
    attn = _mha_reference(x, wq, wk, wv, h, bq, bk, bv) @ m.proj.weight.T + m.proj.bias
    v = x @ wv.T + bv                                             # the shared value projection
    alpha = torch.exp(m.alpha) / torch.exp(m.alpha).sum()
    conv = torch.zeros_like(x)
    for i, (ks, branch) in enumerate(zip((1, 3, 5), m.convs)):
        if ks == 1:
            dw = v
        else:
            dw = torch.zeros_like(v)
            for t in range(N):
                for j in range(ks):
                    u = t + j - ks // 2
                    if 0 <= u < N:
                        dw[:, t] += v[:, u] * branch.depthwise.weight[:, 0, j]
            dw = dw + branch.depthwise.bias
        conv += alpha[i] * (dw @ branch.pointwise.weight[:, :, 0].T + branch.pointwise.bias)
    with torch.no_grad():
        torch.testing.assert_close(m(x), attn + conv, rtol=1e-10, atol=1e-10)


def test_muse_parameters_created_in_init():
    m = vb.create_block("muse", 16, num_heads=4)
    assert [c.depthwise.kernel_size for c in m.convs] == [(3,), (15,)]
    before = {n: p for n, p in m.named_parameters()}
    m(torch.randn(2, 5, 16)).sum().backward()
    after = {n: p for n, p in m.named_parameters()}
    assert before.keys() == after.keys() and all(before[n] is after[n] for n in before)
    assert "alpha" in m.state_dict() and m.alpha.grad is not None
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("muse", 18, num_heads=4)


# ------------------------------------------------------------------------------------------ GFNet global filter
def _global_filter_reference(x, K):
    """Explicit DFTs: X = F_H x F_W (ortho, half spectrum), Z = K X, inverse DFT over H, then the real inverse
    (Hermitian) transform over W, written as the cosine/sine sums."""
    B, C, H, W = x.shape
    Wf = W // 2 + 1
    n_h, n_w = torch.arange(H, dtype=D), torch.arange(W, dtype=D)
    FH = torch.exp(-2j * math.pi * torch.outer(n_h, n_h) / H) / math.sqrt(H)
    FW = torch.exp(-2j * math.pi * torch.outer(n_w, torch.arange(Wf, dtype=D)) / W) / math.sqrt(W)
    X = torch.einsum("uh,bchw,wv->bcuv", FH, x.to(torch.complex128), FW)
    Z = X * K
    Z1 = torch.einsum("hu,bcuv->bchv", FH.conj(), Z)                  # inverse DFT along H
    y = torch.zeros(B, C, H, W, dtype=D)
    for n in range(W):
        acc = Z1[..., 0].real.clone()
        for v in range(1, Wf):
            term = (Z1[..., v] * torch.exp(torch.tensor(2j * math.pi * v * n / W, dtype=torch.complex128))).real
            acc += term if (W % 2 == 0 and v == W // 2) else 2 * term
        y[..., n] = acc / math.sqrt(W)
    return y


@pytest.mark.parametrize("size", [(6, 8), (5, 7)])
def test_global_filter_reference(size):
    H, W = size
    m = _block("global_filter", 3, h=H, w=W // 2 + 1)
    x = torch.randn(2, 3, H, W, dtype=D)
    K = torch.view_as_complex(m.complex_weight.detach().contiguous()).permute(2, 0, 1)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _global_filter_reference(x, K), rtol=1e-10, atol=1e-10)


def test_global_filter_resized_filter():
    m = _block("global_filter", 4, h=14, w=8)
    with torch.no_grad():  # a constant real filter a stays constant when resized: y = a x at any size
        m.complex_weight[..., 0] = 0.7
        m.complex_weight[..., 1] = 0.0
        for size in ((14, 14), (9, 32), (17, 23)):
            x = torch.randn(1, 4, *size, dtype=D)
            torch.testing.assert_close(m(x), 0.7 * x, rtol=1e-10, atol=1e-10)
    m = _block("global_filter", 4, h=14, w=8)
    x = torch.randn(1, 4, 20, 20, dtype=D)
    w = m.complex_weight.detach()                                   # (h, w, C, 2), GFNet's layout
    grid = w.reshape(1, 14, 8, 8).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, size=(20, 11), mode="bicubic", align_corners=True)
    resized = resized.permute(0, 2, 3, 1).reshape(20, 11, 4, 2)
    K = torch.view_as_complex(resized.contiguous()).permute(2, 0, 1)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _global_filter_reference(x, K), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------- layers.MultiHeadAttention
def test_multi_head_attention_layer_with_key_mask_and_out_dim():
    """The shared attention layer (SelfAttention, MobileViT, CoAtNet): masked keys get no weight; in -> out dim."""
    from visionblocks.layers import MultiHeadAttention
    torch.manual_seed(0)
    m = MultiHeadAttention(12, num_heads=2, out_dim=8).double().eval()
    x = torch.randn(2, 5, 12, dtype=D)
    keep = torch.tensor([True, False, True, True, False])
    wq, wk, wv = m.qkv.weight.chunk(3, 0)
    bq, bk, bv = m.qkv.bias.chunk(3, 0)
    # reference on the kept keys only: a masked key is the same as an absent one
    q, k, v = x @ wq.T + bq, x[:, keep] @ wk.T + bk, x[:, keep] @ wv.T + bv
    ref = torch.cat([_softmax_rows(q[..., s] @ k[..., s].transpose(1, 2) / 2.0) @ v[..., s]
                     for s in (slice(0, 4), slice(4, 8))], -1) @ m.proj.weight.T + m.proj.bias
    torch.testing.assert_close(m(x, keep[None]), ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"out_dim \(9\) must be divisible by num_heads \(2\)"):
        MultiHeadAttention(12, num_heads=2, out_dim=9)
