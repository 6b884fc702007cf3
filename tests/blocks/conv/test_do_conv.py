"""Tests of :mod:`visionblocks.blocks.conv.do_conv`."""
import io

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.conv.do_conv import DOConv2d


D = torch.float64
def feature_composition(m, x):
    """Apply D + I to every unfolded patch, then W (paper's feature composition), with explicit einsums."""
    kh, kw = m.kernel_size
    b = x.shape[0]
    cin, g = m.in_channels, m.groups
    cols = F.unfold(x, (kh, kw), dilation=m.dilation, padding=m.padding, stride=m.stride)   # (B, Cin*MN, L)
    cols = cols.view(b, cin, kh * kw, -1)
    p = torch.einsum("ims,bimL->bisL", m.D + m.d_diag, cols)                               # (B, Cin, D_mul, L)
    p = p.view(b, g, cin // g, m.D_mul, -1)
    w = m.W.view(g, m.out_channels // g, cin // g, m.D_mul)
    y = torch.einsum("gois,bgisL->bgoL", w, p).reshape(b, m.out_channels, -1)
    ho = (x.shape[2] + 2 * m.padding[0] - m.dilation * (kh - 1) - 1) // m.stride[0] + 1
    wo = (x.shape[3] + 2 * m.padding[1] - m.dilation * (kw - 1) - 1) // m.stride[1] + 1
    y = y.view(b, m.out_channels, ho, wo)
    return y + m.bias.view(1, -1, 1, 1) if m.bias is not None else y
@pytest.mark.parametrize("groups,D_mul,stride,dilation", [(1, None, 1, 1), (2, 12, 2, 1), (8, None, 2, 2)])
def test_kernel_composition_equals_feature_composition(groups, D_mul, stride, dilation):
    torch.manual_seed(0)
    m = DOConv2d(8, 16, 3, stride, dilation, groups, D_mul=D_mul).to(D)
    with torch.no_grad():
        m.D.normal_()                      # away from the identity initialisation
    x = torch.randn(2, 8, 11, 10, dtype=D)
    y = m(x)
    assert y.shape == (2, 16, -(-11 // stride), -(-10 // stride))
    torch.testing.assert_close(y, feature_composition(m, x), rtol=1e-10, atol=1e-10)
def test_initial_layer_is_the_plain_convolution_of_W():
    torch.manual_seed(0)
    m = DOConv2d(4, 6, 3).to(D)
    x = torch.randn(1, 4, 7, 7, dtype=D)
    torch.testing.assert_close(m(x), F.conv2d(x, m.W.view(6, 4, 3, 3), m.bias, padding=1), rtol=1e-12, atol=1e-12)
def test_1x1_has_no_depthwise_part():
    m = DOConv2d(4, 6, 1)
    assert m.D is None and sum(p.numel() for p in m.parameters()) == 4 * 6 + 6
@pytest.mark.parametrize("groups,stride", [(1, 1), (4, 2)])
def test_fold_is_exact(groups, stride):
    torch.manual_seed(0)
    m = DOConv2d(8, 16, 3, stride, groups=groups).to(D)
    with torch.no_grad():
        m.D.normal_()
    x = torch.randn(2, 8, 13, 9, dtype=D)
    with pytest.raises(RuntimeError):
        m.train().reparameterize()
    m.eval()
    ref = m(x)
    vb.reparameterize(m)
    assert m.is_reparameterized and isinstance(m.conv, torch.nn.Conv2d)
    assert not any(n in dict(m.named_parameters()) for n in ("W", "D", "bias"))
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    vb.reparameterize(m)                   # idempotent
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    # a folded checkpoint loads into a block built with deploy=True
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    d = DOConv2d(8, 16, 3, stride, groups=groups, deploy=True).to(D).eval()
    d.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(d(x), ref, rtol=1e-10, atol=1e-10)
def test_validation():
    with pytest.raises(ValueError, match="D_mul"):
        DOConv2d(4, 4, 3, D_mul=8)
    with pytest.raises(ValueError, match="groups"):
        DOConv2d(6, 4, 3, groups=4)
@pytest.mark.parametrize("kernel_size,bias", [(1, True), (3, False)])
def test_fold_without_depthwise_part_or_bias(kernel_size, bias):
    """A 1x1 DO-Conv (no D) and a bias-free one fold too; the folded form has the deploy form's keys."""
    torch.manual_seed(0)
    m = DOConv2d(4, 6, kernel_size, bias=bias).to(D).eval()
    x = torch.randn(2, 4, 5, 7, dtype=D)
    ref = m(x)
    vb.reparameterize(m)
    assert m.is_reparameterized and (m.conv.bias is not None) == bias and not hasattr(m, "d_diag")
    torch.testing.assert_close(m(x), ref, rtol=1e-12, atol=1e-12)
    assert list(m.state_dict()) == list(DOConv2d(4, 6, kernel_size, bias=bias, deploy=True).state_dict())
