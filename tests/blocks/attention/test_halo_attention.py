"""Tests of :mod:`visionblocks.blocks.attention.halo_attention`."""
import math

import pytest
import torch

import visionblocks as vb

from _reference import _float64, _randomize_attention_window, _w


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
@pytest.mark.usefixtures("_float64")
@pytest.mark.parametrize("stride,size", [(1, (10, 9)), (1, (8, 8)), (2, (9, 11))])
def test_halo_attention_matches_block_loop(stride, size):
    m = _randomize_attention_window(vb.create_block("halo_attention", 8, 12, block_size=4, halo_size=1, num_heads=2, dim_head=4,
                                   stride=stride, qkv_bias=True))
    x = torch.randn(2, 8, *size)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _halo_reference(m, x), rtol=1e-10, atol=1e-10)
@pytest.mark.usefixtures("_float64")
def test_halo_attention_padded_keys_get_no_weight_and_queries_matter():
    """With the query projection zeroed every logit is 0, so each query's output is the plain mean of the
    values of the *in-image* pixels of its window; a non-zero query projection changes the output."""
    m = _randomize_attention_window(vb.create_block("halo_attention", 6, block_size=4, halo_size=2, num_heads=2, dim_head=4, qkv_bias=True))
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
@pytest.mark.usefixtures("_float64")
def test_halo_attention_validates():
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("halo_attention", 12, num_heads=8)
    with pytest.raises(ValueError, match="stride"):
        vb.create_block("halo_attention", 16, block_size=8, stride=3)
