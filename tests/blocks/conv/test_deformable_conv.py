"""Tests of :mod:`visionblocks.blocks.conv.deformable_conv`."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.conv.deformable_conv import deform_conv2d


D = torch.float64
def _bilinear(img, hh, ww):
    """torchvision's bilinear_interpolate for one channel vector: 0 outside (-1, H) x (-1, W); corners outside
    the image contribute 0."""
    c, h, w = img.shape
    if hh <= -1 or hh >= h or ww <= -1 or ww >= w:
        return torch.zeros(c, dtype=img.dtype)
    hl, wl = math.floor(hh), math.floor(ww)
    lh, lw = hh - hl, ww - wl
    out = torch.zeros(c, dtype=img.dtype)
    for yy, xx, wt in ((hl, wl, (1 - lh) * (1 - lw)), (hl, wl + 1, (1 - lh) * lw),
                       (hl + 1, wl, lh * (1 - lw)), (hl + 1, wl + 1, lh * lw)):
        if 0 <= yy < h and 0 <= xx < w:
            out = out + wt * img[:, yy, xx]
    return out
def naive_deform_conv2d(x, offset, weight, bias, stride, pad, dil, mask=None):
    b, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    groups = c // cg
    ho, wo = offset.shape[-2:]
    og = offset.shape[1] // (2 * kh * kw)
    cpo = c // og
    y = torch.zeros(b, o, ho, wo, dtype=x.dtype)
    for bi in range(b):
        for oy in range(ho):
            for ox in range(wo):
                cols = torch.zeros(c, kh, kw, dtype=x.dtype)
                for gi in range(og):
                    for i in range(kh):
                        for j in range(kw):
                            t = i * kw + j
                            dy = float(offset[bi, gi * 2 * kh * kw + 2 * t, oy, ox])
                            dx = float(offset[bi, gi * 2 * kh * kw + 2 * t + 1, oy, ox])
                            hh = oy * stride - pad + i * dil + dy
                            ww = ox * stride - pad + j * dil + dx
                            v = _bilinear(x[bi, gi * cpo:(gi + 1) * cpo], hh, ww)
                            if mask is not None:
                                v = v * mask[bi, gi * kh * kw + t, oy, ox]
                            cols[gi * cpo:(gi + 1) * cpo, i, j] = v
                for g in range(groups):
                    og_ = o // groups
                    y[bi, g * og_:(g + 1) * og_, oy, ox] = (weight[g * og_:(g + 1) * og_] * cols[g * cg:(g + 1) * cg]).sum((1, 2, 3))
    return y if bias is None else y + bias.view(1, -1, 1, 1)
def _offsets(b, og, k, ho, wo, kind, gen):
    n = 2 * og * k * k
    if kind == "big":  # up to +-6 px: many taps land at / beyond the border
        return (torch.rand(b, n, ho, wo, generator=gen, dtype=D) * 12 - 6)
    if kind == "int":
        return torch.randint(-3, 4, (b, n, ho, wo), generator=gen).to(D)
    if kind == "edge":  # exactly -1, -0.999, H-ish: the edge cases of the zero rule
        vals = torch.tensor([-0.999, -1.0, 0.999, 1.0, -1.001, 0.0, 2.5, -2.5], dtype=D)
        return vals[torch.randint(0, len(vals), (b, n, ho, wo), generator=gen)]
    return torch.randn(b, n, ho, wo, generator=gen, dtype=D) * 1.5
@pytest.mark.parametrize("groups,og,stride,size,kind", [
    (1, 1, 1, (5, 6), "small"), (2, 2, 2, (7, 5), "big"), (2, 1, 2, (6, 6), "int"), (1, 2, 1, (4, 5), "edge"),
    (1, 1, 2, (1, 5), "big"), (2, 2, 1, (5, 1), "small"), (1, 1, 1, (1, 1), "edge")])
@pytest.mark.parametrize("modulated", [False, True])
def test_deform_conv2d_matches_naive_loop(groups, og, stride, size, kind, modulated):
    gen = torch.Generator().manual_seed(0)
    c, o, k, pad, dil = 4, 6, 3, 1, 1
    x = torch.randn(2, c, *size, generator=gen, dtype=D)
    w = torch.randn(o, c // groups, k, k, generator=gen, dtype=D)
    bias = torch.randn(o, generator=gen, dtype=D)
    ho = (size[0] + 2 * pad - dil * (k - 1) - 1) // stride + 1
    wo = (size[1] + 2 * pad - dil * (k - 1) - 1) // stride + 1
    off = _offsets(2, og, k, ho, wo, kind, gen)
    mask = torch.rand(2, og * k * k, ho, wo, generator=gen, dtype=D) if modulated else None
    got = deform_conv2d(x, off, w, bias, stride, pad, dil, mask=mask)
    ref = naive_deform_conv2d(x, off, w, bias, stride, pad, dil, mask)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
def test_deform_conv2d_dilation_and_special_cases():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 7, 8, generator=gen, dtype=D)
    w = torch.randn(3, 4, 3, 3, generator=gen, dtype=D)
    off = torch.randn(1, 18, 7, 8, generator=gen, dtype=D)
    torch.testing.assert_close(deform_conv2d(x, off, w, None, 1, 2, 2),
                               naive_deform_conv2d(x, off, w, None, 1, 2, 2), rtol=1e-10, atol=1e-10)
    zero = torch.zeros(1, 18, 4, 4, dtype=D)  # zero offsets == plain convolution
    torch.testing.assert_close(deform_conv2d(x, zero, w, None, 2, 1, 1), F.conv2d(x, w, None, 2, 1),
                               rtol=1e-10, atol=1e-10)
    shift = torch.zeros(1, 18, 7, 8, dtype=D)  # every tap moved by (+1, -2): the conv of the shifted input
    shift[:, 0::2], shift[:, 1::2] = 1.0, -2.0
    z = F.conv2d(F.pad(x, (4, 4, 4, 4)), w)  # z[i', j'] = sum w[u, v] x[i' + u - 4, j' + v - 4], zero outside
    torch.testing.assert_close(deform_conv2d(x, shift, w, None, 1, 1, 1), z[:, :, 4:11, 1:9], rtol=1e-10, atol=1e-10)
def test_deform_conv2d_gradcheck():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 4, 3, generator=gen, dtype=D, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, generator=gen, dtype=D, requires_grad=True)
    off = (torch.rand(1, 18, 2, 2, generator=gen, dtype=D) * 3 - 1.5 + 0.013).requires_grad_(True)
    mask = torch.rand(1, 9, 2, 2, generator=gen, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c, d: deform_conv2d(a, c, b, None, 2, 1, 1, mask=d),
                                    (x, w, off, mask))
@pytest.mark.parametrize("name", ["deformable_conv", "modulated_deformable_conv"])
def test_modules_zero_init_predictor_and_forward(name):
    m = vb.create_block(name, 8, 6, 3, 2, groups=2, offset_groups=2).double()
    assert m.conv_offset.out_channels == (3 if name.startswith("modulated") else 2) * 2 * 9
    assert not m.conv_offset.weight.any() and not m.conv_offset.bias.any()
    x = torch.randn(2, 8, 9, 7, dtype=D)
    plain = F.conv2d(x, m.weight, None, 2, 1, 1, 2)
    scale = 0.5 if name.startswith("modulated") else 1.0  # DCN v2: masks start at sigmoid(0) = 0.5
    torch.testing.assert_close(m(x), scale * plain + m.bias.view(1, -1, 1, 1), rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        m.conv_offset.weight.normal_(0, 0.3)
        m.conv_offset.bias.normal_(0, 1.0)
    om = F.conv2d(x, m.conv_offset.weight, m.conv_offset.bias, 2, 1)
    mask = torch.sigmoid(om[:, 36:]) if name.startswith("modulated") else None
    ref = naive_deform_conv2d(x, om[:, :36], m.weight, m.bias, 2, 1, 1, mask)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="offset_groups"):
        vb.create_block(name, 6, 6, offset_groups=4)
@pytest.mark.parametrize("name", ["deformable_conv", "modulated_deformable_conv"])
def test_eval_memory_one_unfolded_buffer(name):
    """Eval keeps one unfolded (im2col) buffer of U = B C k^2 Ho Wo values, the corners being accumulated into it in
    place (formerly four U-sized tensors at once: the zeros, the gather, the product and the new sum): peak <
    2 U + the output + 32 sampling-grid-sized tensors (S = B og k^2 Ho Wo: offsets, mask, positions, floors,
    fractions, int64 corner indices, validity and weights)."""
    from visionblocks.testing import peak_memory
    b, c, o, k, size = 2, 32, 32, 3, 12
    m = vb.create_block(name, c, o, k).eval()
    with torch.no_grad():
        m.conv_offset.weight.normal_(0, 0.3)
    x = torch.randn(b, c, size, size)
    with torch.no_grad():
        peak = peak_memory(lambda: m(x))
    ho = wo = size  # stride 1, "same" padding
    unfolded, grid, out = b * c * k * k * ho * wo, b * m.offset_groups * k * k * ho * wo, b * o * ho * wo
    bound = (2 * unfolded + out + 32 * grid) * x.element_size()
    assert peak < bound, (peak, bound)
