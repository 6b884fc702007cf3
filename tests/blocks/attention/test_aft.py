"""Tests of :mod:`visionblocks.blocks.attention.aft`."""
import pytest
import torch

import visionblocks as vb

from _reference import _block


D = torch.float64
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


def test_aft_conv_equal_position_biases_are_finite():
    # the biases are normalised by their std over the kernel: equal biases (zeros) were 0/0, NaN even at gamma = 0
    # where the block is meant to start as AFT-simple; now w = beta there, here 0: exactly AFT-simple's average
    m = vb.create_block("aft_conv", 4, num_heads=2, kernel_size=3).double()
    with torch.no_grad():
        m.pos_bias.zero_()
        m.gamma.fill_(1.5)
    x = torch.randn(2, 4, 5, 6, dtype=D, requires_grad=True)
    y = m(x)
    q, k, v = m.qkv(x).chunk(3, 1)
    ref = torch.sigmoid(q) * (torch.softmax(k.flatten(2), -1) * v.flatten(2)).sum(-1)[..., None, None]
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    y.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters()) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name,kwargs", [("aft_full", {}), ("aft_local", {"window_size": 32})])
def test_aft_inference_holds_one_position_bias_map(name, kwargs):
    # without autograd exp(w - max w) is built in place in one (T, T) copy (AFT-local: in its banded w); the
    # parameter is left alone.  It took two copies (w - max w, its exp), AFT-local three (the banded w too).
    from visionblocks.testing import peak_memory
    B, T, C = 2, 1024, 8
    m = vb.create_block(name, C, T, **kwargs).eval()
    with torch.no_grad():
        m.pos_bias.normal_()
    w = m.pos_bias.detach().clone()
    x = torch.randn(B, T, C)
    one_map = T * T * x.element_size()
    # besides the map: q/k/v (3 inputs), exp(K), exp(K) V, the two products, sigmoid(Q): under 10 inputs
    with torch.no_grad():
        assert peak_memory(lambda: m(x)) <= one_map + 10 * x.numel() * x.element_size()
    assert torch.equal(m.pos_bias, w)


@pytest.mark.parametrize("name,kwargs", [("aft_full", {}), ("aft_local", {"window_size": 3})])
def test_aft_inference_path_matches_autograd_path(name, kwargs):
    m = _block(name, 8, 12, **kwargs)
    w = m.pos_bias.detach().clone()
    x = torch.randn(2, 12, 8, dtype=D) * 2
    with torch.no_grad():
        y = m(x)
    assert torch.equal(m.pos_bias, w)
    torch.testing.assert_close(y, m(x.requires_grad_()).detach(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("how", ["float16", "autocast"])
def test_aft_factored_form_keeps_float16_finite(how, grad):
    # K peaks where w is lowest: the factored form's terms are exp(-(spread K) - (spread w)) = exp(-40), below
    # float16's range (0/0 = NaN before); computed in float32 at least, it equals the paper's softmax
    from visionblocks.blocks.attention.aft import aft_weighted_average
    T, C, s = 8, 4, 20.0
    k = torch.zeros(1, T, C, dtype=torch.float64)
    k[0, 0], k[0, 1:] = s, -s
    w = torch.zeros(T, T, dtype=torch.float64)
    w[:, 0] = -s
    q = torch.randn(1, T, C, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    v = torch.randn(1, T, C, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.sigmoid(q) * torch.softmax(k[:, None] + w[None, :, :, None], dim=2).mul(v[:, None]).sum(2)
    dtype = torch.float16 if how == "float16" else torch.float32
    args = [t.to(dtype).requires_grad_(grad) for t in (q, k, v, w)]
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.float16, enabled=how == "autocast"):
        out = aft_weighted_average(*args)
    assert out.dtype == dtype
    assert float((out.double() - ref).abs().max()) < 2e-3
