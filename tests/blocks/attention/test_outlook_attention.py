"""Tests of :mod:`visionblocks.blocks.attention.outlook_attention`."""
import math

import pytest
import torch

import visionblocks as vb

from _reference import _float64, _randomize_attention_window, _w


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
@pytest.mark.usefixtures("_float64")
@pytest.mark.parametrize("stride,size,k", [(2, (7, 6), 3), (1, (5, 4), 3), (2, (8, 8), 3), (3, (10, 8), 5), (2, (1, 3), 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_outlook_attention_matches_window_loop(stride, size, k, channels_last):
    """Both paths (strided copies in eager; unfold/fold under compile/export), NCHW and channels-last inputs,
    forward and the input gradient, against the window loop."""
    m = _randomize_attention_window(vb.create_block("outlook_attention", 12, num_heads=3, kernel_size=k, stride=stride, qkv_bias=True))
    x = torch.randn(2, 12, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ref = _outlook_reference(m, x.requires_grad_())
    g = torch.randn_like(ref)
    (gref,) = torch.autograd.grad(ref, x, g)
    for y in (m(x), m._forward_unfold(x)):
        torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(torch.autograd.grad(y, x, g)[0], gref, rtol=1e-10, atol=1e-10)
@pytest.mark.usefixtures("_float64")
def test_outlook_attention_validates():
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("outlook_attention", 10, num_heads=3)
    with pytest.raises(ValueError, match="odd"):
        vb.create_block("outlook_attention", 12, num_heads=3, kernel_size=4)


def test_outlook_attention_compiles_at_volo_d1_first_stage():
    """torch.compile of the unfold/fold form corrupted the heap at this shape (inductor, torch 2.13, CPU: "double
    free or corruption" in eval); the compiled block now runs the strided-copy form, equal to eager."""
    torch.manual_seed(0)
    m = vb.create_block("outlook_attention", 192, num_heads=6, stride=2).eval()
    x = torch.randn(8, 192, 28, 28)
    compiled = torch.compile(m, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), m(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k,s", [(3, 1), (3, 2), (5, 2), (3, 3), (5, 4), (1, 2)])
def test_fold_as_transposed_convolution_equals_fold(k, s):
    # the form a TorchScript trace takes (that ONNX exporter cannot translate fold/col2im at any opset)
    import torch.nn.functional as F
    m = vb.create_block("outlook_attention", 12, num_heads=2, kernel_size=k, stride=s).double()
    p = k // 2
    for h, w in [(14, 14), (15, 17), (1, 1), (2, 3), (7, 9)]:
        lh, lw = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        y = torch.randn(2, 12 * k * k, lh * lw, dtype=torch.float64)
        torch.testing.assert_close(m._fold_transposed(y, h, w), F.fold(y, (h, w), k, padding=p, stride=s),
                                   rtol=0, atol=1e-12)
