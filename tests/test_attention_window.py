"""Float64 references, from the papers' equations, for the windowed / patch attention blocks:
outlook_attention (VOLO), halo_attention (HaloNet), coatnet_attention (CoAtNet), mobilevit_attention
(MobileViT) and mobilevitv2_attention (MobileViTv2)."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.testing import randomize_bn_stats



@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _randomize(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    randomize_bn_stats(m, seed)
    return m.double().eval()


def _w(conv):
    """A 1x1 conv's (out, in) matrix and bias (zeros when it has none)."""
    w = conv.weight[:, :, 0, 0]
    return w, (conv.bias if conv.bias is not None else torch.zeros(w.shape[0]))


# ------------------------------------------------------------------------------------------- outlook
def _outlook_reference(m, x):
    """Loop over the windows: A_ij = softmax(W_A pool(x)_ij * scale), Y_window += A_ij V_window, then W_O."""
    B, C, H, W = x.shape
    k, s, p, nh, d = m.kernel_size, m.stride, m.padding, m.num_heads, m.head_dim
    wv, bv = _w(m.v)
    wa, ba = _w(m.attn)
    v = torch.einsum("oc,bchw->bohw", wv, x) + bv[:, None, None]
    out = torch.zeros_like(x)
    for i in range(math.ceil(H / s)):
        for j in range(math.ceil(W / s)):
            cell = x[:, :, i * s:(i + 1) * s, j * s:(j + 1) * s]          # the in-image part of the pooling cell
            pooled = cell.mean((2, 3))
            a = (pooled @ wa.T + ba).reshape(B, nh, k * k, k * k) * m.scale
            a = torch.softmax(a, dim=-1)
            pos = [(i * s - p + u, j * s - p + w) for u in range(k) for w in range(k)]
            vw = torch.stack([v[:, :, r, c] if 0 <= r < H and 0 <= c < W else torch.zeros(B, C) for r, c in pos], 1)
            vw = vw.reshape(B, k * k, nh, d).permute(0, 2, 1, 3)           # B, heads, kk, d
            yw = (a @ vw).permute(0, 2, 1, 3).reshape(B, k * k, C)
            for n, (r, c) in enumerate(pos):
                if 0 <= r < H and 0 <= c < W:
                    out[:, :, r, c] += yw[:, n]
    wo, bo = _w(m.proj)
    return torch.einsum("oc,bchw->bohw", wo, out) + bo[:, None, None]


@pytest.mark.parametrize("stride,size", [(2, (7, 6)), (1, (5, 4)), (2, (8, 8))])
def test_outlook_attention_matches_window_loop(stride, size):
    m = _randomize(vb.create_block("outlook_attention", 12, num_heads=3, kernel_size=3, stride=stride, qkv_bias=True))
    x = torch.randn(2, 12, *size)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _outlook_reference(m, x), rtol=1e-10, atol=1e-10)


def test_outlook_attention_validates():
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("outlook_attention", 10, num_heads=3)
    with pytest.raises(ValueError, match="odd"):
        vb.create_block("outlook_attention", 12, num_heads=3, kernel_size=4)


# ------------------------------------------------------------------------------------------- halo
def _halo_reference(m, x):
    """Loop over blocks and queries; keys from the haloed window, out-of-image keys explicitly skipped."""
    B, C, H, W = x.shape
    b, h, s, nh, dk, dv = m.block_size, m.halo_size, m.stride, m.num_heads, m.dim_head, m.dim_v
    wq, bq = _w(m.q)
    wkv, bkv = _w(m.kv)
    q = (torch.einsum("oc,bchw->bohw", wq, x) + bq[:, None, None]).reshape(B, nh, dk, H, W)
    kv = (torch.einsum("oc,bchw->bohw", wkv, x) + bkv[:, None, None]).reshape(B, nh, dk + dv, H, W)
    k, v = kv[:, :, :dk], kv[:, :, dk:]
    Ho, Wo = math.ceil(H / s), math.ceil(W / s)
    out = torch.zeros(B, nh, dv, Ho, Wo)
    off = b + h - 1
    for by in range(math.ceil(H / b)):
        for bx in range(math.ceil(W / b)):
            for ay in range(0, b, s):
                for ax in range(0, b, s):
                    qy, qx = by * b + ay, bx * b + ax
                    if qy >= H or qx >= W:
                        continue
                    keys = [(by * b - h + ry, bx * b - h + rx, ry, rx) for ry in range(b + 2 * h) for rx in range(b + 2 * h)]
                    keys = [t for t in keys if 0 <= t[0] < H and 0 <= t[1] < W]     # padded keys: no weight
                    qv = q[:, :, :, qy, qx] * m.scale                                 # B, nh, dk
                    logits = []
                    for ky, kx, ry, rx in keys:
                        r = m.rel_height[ry - ay - h + off] + m.rel_width[rx - ax - h + off]
                        logits.append((qv * (k[:, :, :, ky, kx] + r)).sum(-1))
                    a = torch.softmax(torch.stack(logits, -1), -1)                   # B, nh, n_keys
                    vals = torch.stack([v[:, :, :, ky, kx] for ky, kx, _, _ in keys], -1)
                    out[:, :, :, qy // s, qx // s] = (vals * a[:, :, None]).sum(-1)
    return out.reshape(B, nh * dv, Ho, Wo)


@pytest.mark.parametrize("stride,size", [(1, (10, 9)), (1, (8, 8)), (2, (9, 11))])
def test_halo_attention_matches_block_loop(stride, size):
    m = _randomize(vb.create_block("halo_attention", 8, 12, block_size=4, halo_size=1, num_heads=2, dim_head=4,
                                   stride=stride, qkv_bias=True))
    x = torch.randn(2, 8, *size)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _halo_reference(m, x), rtol=1e-10, atol=1e-10)


def test_halo_attention_padded_keys_get_no_weight_and_queries_matter():
    """With the query projection zeroed every logit is 0, so each query's output is the plain mean of the
    values of the *in-image* pixels of its window; a non-zero query projection changes the output."""
    m = _randomize(vb.create_block("halo_attention", 6, block_size=4, halo_size=2, num_heads=2, dim_head=4, qkv_bias=True))
    x = torch.randn(1, 6, 7, 5)
    with torch.no_grad():
        out_q = m(x)
        m.q.weight.zero_()
        m.q.bias.zero_()
        out = m(x)
    wkv, bkv = _w(m.kv)
    v = (torch.einsum("oc,bchw->bohw", wkv, x) + bkv[:, None, None]).reshape(1, 2, 4 + 3, 7, 5)[:, :, 4:]
    for qy in range(7):
        for qx in range(5):
            by, bx = qy // 4 * 4, qx // 4 * 4
            win = v[:, :, :, max(0, by - 2):by + 6, max(0, bx - 2):bx + 6]    # slicing drops the padding
            torch.testing.assert_close(out[:, :, qy, qx], win.mean((-2, -1)).reshape(1, 6))
    assert (out_q - out).abs().max() > 1e-3


def test_halo_attention_validates():
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("halo_attention", 12, num_heads=8)
    with pytest.raises(ValueError, match="stride"):
        vb.create_block("halo_attention", 16, block_size=8, stride=3)


# ------------------------------------------------------------------------------------------- coatnet
def _coatnet_reference(m, x):
    """Explicit softmax with w_{i-j} read from the table at (dy + a - 1, dx + b - 1), pre-norm residuals."""
    B, C, H, W = x.shape
    at = m.attn
    nh, d = at.num_heads, at.head_dim
    a, b = (at.rel_table.shape[1] + 1) // 2, (at.rel_table.shape[2] + 1) // 2
    t = x.flatten(2).transpose(1, 2)
    pos = [(i, j) for i in range(H) for j in range(W)]
    bias = torch.empty(nh, H * W, H * W)
    for p, (yi, xi) in enumerate(pos):
        for q, (yj, xj) in enumerate(pos):
            bias[:, p, q] = at.rel_table[:, yi - yj + a - 1, xi - xj + b - 1]
    u = F.layer_norm(t, (C,), m.norm1.weight, m.norm1.bias, m.norm1.eps)
    qkv = (u @ at.qkv.weight.T + at.qkv.bias).reshape(B, H * W, 3, nh, d)
    q, k, v = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
    y = (att @ v).transpose(1, 2).reshape(B, H * W, C) @ at.proj.weight.T + at.proj.bias
    t = t + y
    u = F.layer_norm(t, (C,), m.norm2.weight, m.norm2.bias, m.norm2.eps)
    t = t + F.gelu(u @ m.mlp.fc1.weight.T + m.mlp.fc1.bias) @ m.mlp.fc2.weight.T + m.mlp.fc2.bias
    return t.transpose(1, 2).reshape(B, C, H, W)


@pytest.mark.parametrize("size", [(5, 5), (3, 4)])
def test_coatnet_attention_matches_explicit_softmax(size):
    """At the table's size and below it (the centre of the table holds every offset)."""
    m = _randomize(vb.create_block("coatnet_attention", 16, dim_head=8, rel_size=5))
    x = torch.randn(2, 16, *size)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _coatnet_reference(m, x), rtol=1e-10, atol=1e-10)


def test_coatnet_relative_bias_at_larger_size_is_interpolated_table():
    from visionblocks.blocks.attention.coatnet_attention import relative_position_bias
    table = torch.randn(2, 5, 5)                                   # built for 3x3
    big = F.interpolate(table[None], size=(9, 7), mode="bicubic", align_corners=False)[0]
    bias = relative_position_bias(table, 5, 4)                     # needs 9 x 7 offsets
    for p in range(20):
        for q in range(20):
            (yi, xi), (yj, xj) = divmod(p, 4), divmod(q, 4)
            torch.testing.assert_close(bias[:, p, q], big[:, yi - yj + 4, xi - xj + 3])
    # mixed: larger along H only -> W axis is cropped, H axis interpolated
    bias = relative_position_bias(table, 4, 2)
    tall = F.interpolate(table[None], size=(7, 5), mode="bicubic", align_corners=False)[0][:, :, 1:4]
    torch.testing.assert_close(bias[:, 0, 7], tall[:, 0 - 3 + 3, 0 - 1 + 1])


def test_coatnet_downsampling_block():
    m = _randomize(vb.create_block("coatnet_attention", 16, 32, dim_head=8, rel_size=4, stride=2))
    x = torch.randn(2, 16, 9, 8)
    with torch.no_grad():
        y = m(x)
        # the first half of Eq. (5): Proj(Pool(x)) + Attention(Pool(LN(x))) with 3x3/2 max pooling
        ln = F.layer_norm(x.permute(0, 2, 3, 1), (16,), m.norm1.weight, m.norm1.bias).permute(0, 3, 1, 2)
        pooled = F.max_pool2d(ln, 3, 2, 1)
        short = F.conv2d(F.max_pool2d(x, 3, 2, 1), m.shortcut.weight, m.shortcut.bias).flatten(2).transpose(1, 2)
        t = short + m.attn(pooled.flatten(2).transpose(1, 2), 5, 4)
        t = t + m.mlp(m.norm2(t))
    assert y.shape == (2, 32, 5, 4)
    torch.testing.assert_close(y, t.transpose(1, 2).reshape(2, 32, 5, 4))


def test_coatnet_attention_validates():
    with pytest.raises(ValueError, match="dim_head"):
        vb.create_block("coatnet_attention", 48, dim_head=32)
    with pytest.raises(ValueError, match="out_channels"):
        vb.create_block("coatnet_attention", 64, 128, stride=1)


# ------------------------------------------------------------------------------------------- mobilevit
def _pixel_groups(H, W, ph, pw):
    """For each pixel position p inside a patch, the in-image pixels (one per patch) that form its sequence."""
    return [[(r, c) for r in range(py, H, ph) for c in range(px, W, pw)] for py in range(ph) for px in range(pw)]


def _mha(layer, t, nh):
    B, N, D = t.shape
    d = D // nh
    qkv = (t @ layer.qkv.weight.T + layer.qkv.bias).reshape(B, N, 3, nh, d).permute(2, 0, 3, 1, 4)
    att = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (att @ qkv[2]).transpose(1, 2).reshape(B, N, D) @ layer.proj.weight.T + layer.proj.bias


def _mobilevit_reference(m, x, nh):
    """Eq. (1): per intra-patch pixel p, transformers over the patches (only in-image pixels exist)."""
    B, C, H, W = x.shape
    y = m.conv_1x1_in(m.conv_kxk(x))
    out = torch.zeros_like(y)
    for group in _pixel_groups(H, W, *m.patch_size):
        t = torch.stack([y[:, :, r, c] for r, c in group], 1)           # B, N_p, d
        for layer in m.layers:
            n1 = F.layer_norm(t, t.shape[-1:], layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
            t = t + _mha(layer.attn, n1, nh)
            n2 = F.layer_norm(t, t.shape[-1:], layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)
            f1, f2 = layer.ffn.fc1, layer.ffn.fc2
            t = t + F.silu(n2 @ f1.weight.T + f1.bias) @ f2.weight.T + f2.bias
        t = F.layer_norm(t, t.shape[-1:], m.norm.weight, m.norm.bias, m.norm.eps)
        for n, (r, c) in enumerate(group):
            out[:, :, r, c] = t[:, n]
    return m.conv_fusion(torch.cat([x, m.conv_proj(out)], 1))


@pytest.mark.parametrize("size", [(6, 8), (7, 5)])
def test_mobilevit_attention_matches_reference(size):
    m = _randomize(vb.create_block("mobilevit_attention", 8, transformer_dim=12, num_layers=2, num_heads=3))
    x = torch.randn(2, 8, *size)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _mobilevit_reference(m, x, 3), rtol=1e-10, atol=1e-10)


def test_mobilevit_attention_validates():
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("mobilevit_attention", 8, transformer_dim=10, num_heads=4)


# ------------------------------------------------------------------------------------------- mobilevitv2
def _mobilevitv2_reference(m, x):
    """Separable attention by hand: c_s = softmax_n(x W_I) over the in-image tokens of each pixel position,
    c_v = sum_n c_s(n) x_n W_K, y = (ReLU(x W_V) * c_v) W_O; GroupNorm(1) over the in-image map."""
    y = m.conv_1x1_in(m.conv_kxk(x))
    groups = _pixel_groups(*x.shape[-2:], *m.patch_size)
    d = y.shape[1]

    def gn(z, norm):
        return F.group_norm(z, 1, norm.weight, norm.bias, norm.eps)

    def conv1x1(z, conv):
        w, b = _w(conv)
        return torch.einsum("oc,bchw->bohw", w, z) + b[:, None, None]

    for layer in m.layers:
        u = conv1x1(gn(y, layer.norm1), layer.attn.qkv)
        i, k, v = u[:, :1], u[:, 1:1 + d], u[:, 1 + d:]
        att = torch.zeros_like(y)
        for group in groups:
            rows, cols = [r for r, _ in group], [c for _, c in group]
            scores = torch.softmax(i[:, 0, rows, cols], dim=-1)                # B, N_p  (context scores)
            context = (k[:, :, rows, cols] * scores[:, None]).sum(-1)           # B, d    (context vector)
            att[:, :, rows, cols] = F.relu(v[:, :, rows, cols]) * context[:, :, None]
        y = y + conv1x1(att, layer.attn.proj)
        f1, f2 = layer.ffn.fc1, layer.ffn.fc2
        y = y + conv1x1(F.silu(conv1x1(gn(y, layer.norm2), f1)), f2)
    return m.conv_proj(gn(y, m.norm))


@pytest.mark.parametrize("size", [(6, 8), (7, 5)])
def test_mobilevitv2_attention_matches_reference(size):
    m = _randomize(vb.create_block("mobilevitv2_attention", 8, transformer_dim=6, num_layers=2))
    x = torch.randn(2, 8, *size)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _mobilevitv2_reference(m, x), rtol=1e-10, atol=1e-10)


def test_mobilevitv2_context_score_by_hand():
    """One sequence of 3 tokens, d = 1: c_s = softmax(w_I x + b_I), c_v = sum c_s (w_K x + b_K)."""
    from visionblocks.blocks.attention.mobilevitv2_attention import SeparableSelfAttention
    att = SeparableSelfAttention(1).double()
    with torch.no_grad():
        att.qkv.weight.copy_(torch.tensor([2.0, 1.0, -1.0]).reshape(3, 1, 1, 1))
        att.qkv.bias.copy_(torch.tensor([0.5, 0.0, 1.0]))
        att.proj.weight.fill_(1.0)
        att.proj.bias.zero_()
    xs = [1.0, -2.0, 0.0]
    x = torch.tensor(xs).reshape(1, 1, 1, 3)
    e = [math.exp(2 * v + 0.5) for v in xs]
    cs = [t / sum(e) for t in e]
    cv = sum(c * v for c, v in zip(cs, xs))
    expected = [max(0.0, -v + 1.0) * cv for v in xs]
    torch.testing.assert_close(att(x).flatten(), torch.tensor(expected))


@pytest.mark.parametrize("name", ["mobilevit_attention", "mobilevitv2_attention"])
@pytest.mark.parametrize("size", [(1, 1), (1, 5), (3, 1)])
def test_mobilevit_blocks_smaller_than_a_patch(name, size):
    """Maps thinner than a patch leave whole sequences of padding: outputs and gradients stay finite."""
    m = vb.create_block(name, 8, transformer_dim=8, num_layers=1).train()
    x = torch.randn(2, 8, *size, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------------------ layers.patches
@pytest.mark.parametrize("channels_last", [False, True])
def test_patch_unfold_fold_layout_and_round_trip(channels_last):
    from visionblocks.layers import fold_patches, pad_to_patches, unfold_patches
    x = torch.randn(2, 3, 4, 6)
    t = unfold_patches(x, 2, 3, channels_last=channels_last)
    for b, c, p, n in [(0, 0, 0, 0), (1, 2, 4, 3), (1, 1, 5, 1), (0, 2, 3, 2)]:
        (pi, pj), (ni, nj) = divmod(p, 3), divmod(n, 2)      # pixel p of patch n
        got = t[b * 6 + p, n, c] if channels_last else t[b, c, p, n]
        assert got == x[b, c, ni * 2 + pi, nj * 3 + pj]
    assert torch.equal(fold_patches(t, 4, 6, 2, 3, channels_last=channels_last), x)
    y, valid = pad_to_patches(x[..., :3, :5], 2, 3)
    assert y.shape == (2, 3, 4, 6) and valid.shape == (1, 1, 4, 6) and valid.sum() == 15
    assert torch.equal(y[..., :3, :5], x[..., :3, :5]) and y[..., 3:, :].abs().sum() == 0
    assert pad_to_patches(x, 2, 3) == (x, None)
