"""Tests of :mod:`visionblocks.blocks.attention.cot`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _build, bn_eval as _bn


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
