"""Tests of :mod:`visionblocks.blocks.conv.octave_conv`."""
import math

import pytest
import torch
import torch.nn.functional as F

from visionblocks.blocks.conv.octave_conv import OctaveConv


D = torch.float64
def ref_pool(x):
    """2x2 average pooling by explicit windows; a border window of an odd size averages the pixels it covers."""
    h, w = x.shape[-2:]
    out = x.new_zeros(*x.shape[:-2], math.ceil(h / 2), math.ceil(w / 2))
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            out[..., i, j] = x[..., 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean((-2, -1))
    return out
def ref_up(x, size):
    """Nearest x2 upsampling: out[i, j] = x[i // 2, j // 2], cropped to ``size``."""
    ii = torch.arange(size[0]) // 2
    jj = torch.arange(size[1]) // 2
    return x[..., ii, :][..., jj]
def conv(x, w, groups):
    return F.conv2d(x, w, padding=w.shape[-1] // 2, groups=groups)
def reference(m, x_h, x_l):
    g = m.conv_hh.groups
    if m.stride == 2:
        x_h = ref_pool(x_h)
    y_h = conv(x_h, m.conv_hh.weight, g)
    y_l = conv(ref_pool(x_h), m.conv_hl.weight, g) if m.out_l else None
    if x_l is not None:
        l2h = conv(x_l, m.conv_lh.weight, g)
        y_h = y_h + (ref_up(l2h, x_h.shape[-2:]) if m.stride == 1 else l2h)
        if m.out_l:
            y_l = y_l + conv(ref_pool(x_l) if m.stride == 2 else x_l, m.conv_ll.weight, g)
    return y_h, y_l
@pytest.mark.parametrize("alpha_in,alpha_out,groups", [(0.5, 0.5, 1), (0.0, 0.5, 1), (0.5, 0.0, 1), (0.25, 0.25, 2)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(12, 16), (13, 9)])
def test_matches_paper_equations(alpha_in, alpha_out, groups, stride, size):
    torch.manual_seed(0)
    m = OctaveConv(16, 24, 3, stride, alpha_in, alpha_out, groups=groups).to(D).eval()
    x_h = torch.randn(2, m.in_h, *size, dtype=D)
    x_l = torch.randn(2, m.in_l, math.ceil(size[0] / 2), math.ceil(size[1] / 2), dtype=D) if m.in_l else None
    y_h, y_l = m(x_h, x_l)
    r_h, r_l = reference(m, x_h, x_l)
    ho, wo = math.ceil(size[0] / stride), math.ceil(size[1] / stride)
    assert y_h.shape == (2, m.out_h, ho, wo)
    torch.testing.assert_close(y_h, r_h, rtol=1e-10, atol=1e-10)
    if alpha_out == 0:
        assert y_l is None
    else:
        assert y_l.shape == (2, m.out_l, math.ceil(ho / 2), math.ceil(wo / 2))
        torch.testing.assert_close(y_l, r_l, rtol=1e-10, atol=1e-10)
def test_alpha_zero_is_plain_conv():
    torch.manual_seed(0)
    m = OctaveConv(8, 12, 3, alpha_in=0.0, alpha_out=0.0).to(D)
    x = torch.randn(2, 8, 11, 10, dtype=D)
    y_h, y_l = m(x)
    assert y_l is None
    torch.testing.assert_close(y_h, F.conv2d(x, m.conv_hh.weight, padding=1), rtol=1e-12, atol=1e-12)
def test_params_equal_plain_conv_and_channel_split():
    m = OctaveConv(64, 128, 3, alpha_in=0.5, alpha_out=0.25)
    assert (m.in_h, m.in_l, m.out_h, m.out_l) == (32, 32, 96, 32)
    assert sum(p.numel() for p in m.parameters()) == 64 * 128 * 9
def test_bad_inputs():
    m = OctaveConv(16, 16)
    with pytest.raises(ValueError, match=r"\(2, 8, 4, 5\)"):
        m(torch.randn(2, 8, 10, 10), torch.randn(2, 8, 4, 5))
    with pytest.raises(ValueError, match="low-frequency"):
        m(torch.randn(2, 8, 10, 10))
    with pytest.raises(ValueError, match="alpha_in"):
        OctaveConv(16, 16, alpha_in=1.0)
    with pytest.raises(ValueError, match="stride"):
        OctaveConv(16, 16, stride=3)
    with pytest.raises(ValueError, match="groups"):
        OctaveConv(16, 16, alpha_in=0.25, groups=8)
