"""Tests of :mod:`visionblocks.blocks.attention.shuffle_attention`."""
import copy

import pytest
import torch

import visionblocks as vb

from _reference import _randomize, assert_inference_path_equals_autograd_path


D = torch.float64


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_shuffle_attention_gates_by_hand(channels_last, grad):
    """The paper's two gates per group and the shuffle, by hand; a channels-last input (its own path: one
    var_mean over the positions, the shuffle written by the last product) gives the same values and keeps its
    layout, with and without autograd, and the same gradients."""
    G = 4
    m = _randomize(vb.create_block("shuffle_attention", 32, groups=G), scale=0.8).double()
    x = torch.randn(2, 32, 5, 7, dtype=D)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(grad)
    C, half = 32, 32 // (2 * G)
    y = torch.empty_like(x)
    for g in range(G):
        xg = x[:, g * C // G:(g + 1) * C // G]
        x1, x2 = xg[:, :half], xg[:, half:]
        s = x1.mean((2, 3), keepdim=True)
        y1 = x1 * torch.sigmoid(m.cweight * s + m.cbias)                            # channel attention
        mu = x2.mean((2, 3), keepdim=True)
        var = ((x2 - mu) ** 2).mean((2, 3), keepdim=True)
        gn = (x2 - mu) / torch.sqrt(var + 1e-5) * m.gn.weight.view(1, -1, 1, 1) + m.gn.bias.view(1, -1, 1, 1)
        y2 = x2 * torch.sigmoid(m.sweight * gn + m.sbias)                           # spatial attention
        y[:, g * C // G:(g + 1) * C // G] = torch.cat([y1, y2], 1)
    ref = torch.empty_like(y)
    for j in range(C // 2):  # channel shuffle with 2 groups: out[2j + k] = y[k * C/2 + j]
        for k in range(2):
            ref[:, 2 * j + k] = y[:, k * C // 2 + j]
    with torch.set_grad_enabled(grad):
        out = m(x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if grad:
        g = torch.randn_like(ref)
        got = torch.autograd.grad(out, [x, *m.parameters()], g)
        want = torch.autograd.grad(ref, [x, *m.parameters()], g)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    assert sum(p.numel() for p in vb.create_block("shuffle_attention", 256).parameters()) == 3 * 256 // 64
def test_shuffle_attention_and_sge_validate_groups():
    with pytest.raises(ValueError, match=r"channels \(96\) must be divisible by 2 \* groups \(128\)"):
        vb.create_block("shuffle_attention", 96)
    with pytest.raises(ValueError, match=r"channels \(96\) must be divisible by groups \(64\)"):
        vb.create_block("sge", 96)


@pytest.mark.parametrize("groups", [2, 3])
def test_shuffle_attention_inference_path_equals_autograd_path(groups):
    assert_inference_path_equals_autograd_path("shuffle_attention", 24, groups=groups, input_shape=(2, 24, 6, 5))


def test_channels_last_training_form_low_precision():
    torch.manual_seed(0)
    m = vb.create_block("shuffle_attention", 64, groups=8).train()
    x = (torch.randn(2, 64, 9, 7) * 3 + 5).contiguous(memory_format=torch.channels_last)
    ref_x = x.clone().requires_grad_()
    ref = m(ref_x.contiguous())                                          # NCHW form, float32
    g = torch.randn_like(ref)
    (ref_gx,) = torch.autograd.grad(ref, ref_x, g)
    mb = copy.deepcopy(m).to(torch.bfloat16)
    xb = x.to(torch.bfloat16).requires_grad_()
    yb = mb(xb)
    (gxb,) = torch.autograd.grad(yb, xb, g.to(torch.bfloat16))
    assert torch.isfinite(yb).all() and torch.isfinite(gxb).all()
    assert (yb.float() - ref).norm() / ref.norm() < 0.05
    assert (gxb.float() - ref_gx).norm() / ref_gx.norm() < 0.1



def test_channels_last_training_form_second_derivatives():
    """A gradient penalty (create_graph=True) differentiates the gradient: the hand-written backward steps aside
    and autograd's graph of the formula gives the second derivatives, equal to the NCHW form's (float64)."""
    torch.manual_seed(0)
    m = _randomize(vb.create_block("shuffle_attention", 32, groups=4), scale=0.5).double().train()
    x = torch.randn(2, 32, 5, 6, dtype=D)
    grads = []
    for inp in (x.clone(), x.contiguous(memory_format=torch.channels_last)):
        inp.requires_grad_()
        (gx,) = torch.autograd.grad((m(inp) ** 2).sum(), inp, create_graph=True)
        penalty = (gx ** 2).sum()
        grads.append(torch.autograd.grad(penalty, [inp, *m.parameters()]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dim,shape,coef", [(1, (2, 6, 4), (1, 1, 4)), (2, (2, 4, 6), (1, 4, 1))])
def test_gated_instance_norm_backward_is_the_derivative(dim, shape, coef):
    """The hand-written backward of the channels-last training form against finite differences, and its
    create_graph path (autograd's graph of the formula) for second derivatives (float64)."""
    from visionblocks.blocks.attention.shuffle_attention import _GatedInstanceNorm
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    a, k, e = (torch.randn(coef, dtype=torch.float64, requires_grad=True) for _ in range(3))
    fn = lambda *t: _GatedInstanceNorm.apply(*t, 1e-5, dim)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, a, k, e))
    assert torch.autograd.gradgradcheck(fn, (x, a, k, e))
