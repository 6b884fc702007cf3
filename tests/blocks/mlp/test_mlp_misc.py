"""Tests that name no single block or model (kept together by scripts/mirror_tests.py)."""
import pytest
import torch

import visionblocks as vb

from _reference import _perturb


D = torch.float64
def test_token_blocks_reject_other_token_counts():
    for name in ("mixer_block", "resmlp_block", "gmlp_block"):
        m = vb.create_block(name, 16, 9)
        with pytest.raises(ValueError, match="9 tokens"):
            m(torch.randn(1, 10, 16))
@pytest.mark.parametrize("bias", [True, False])
def test_token_linear_is_the_linear_layer_along_tokens(bias):
    from visionblocks.layers import token_linear

    lin = _perturb(torch.nn.Linear(7, 5, bias=bias).double())
    x = torch.randn(3, 7, 4, dtype=D, requires_grad=True)
    y = token_linear(x, lin)
    ref = lin(x.transpose(1, 2)).transpose(1, 2)
    assert y.shape == (3, 5, 4)
    torch.testing.assert_close(y, ref, rtol=1e-13, atol=1e-13)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, lin.weight], g)
    ref_grads = torch.autograd.grad(ref, [x, lin.weight], g)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
def test_affine_is_identity_at_init_and_per_channel():
    from visionblocks.layers import Affine

    m = Affine(6).double()
    x = torch.randn(2, 3, 6, dtype=D)
    torch.testing.assert_close(m(x), x, rtol=0, atol=0)
    _perturb(m)
    torch.testing.assert_close(m(x), x * m.alpha + m.beta, rtol=1e-14, atol=1e-14)


def test_affine_on_transposed_tokens_values_and_gradients():
    # a patch embedding's tokens are a (B, C, N) tensor viewed as (B, N, C): the product + in-place sum form
    from visionblocks.layers import Affine

    m = _perturb(Affine(6).double())
    x = torch.randn(2, 6, 5, dtype=D).transpose(1, 2).requires_grad_()
    y = m(x)
    ref = x * m.alpha + m.beta
    torch.testing.assert_close(y, ref, rtol=1e-14, atol=1e-14)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(y, [x, m.alpha, m.beta], g)
    want = torch.autograd.grad(ref, [x, m.alpha, m.beta], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


def test_mlp_blocks_use_the_shared_layers():
    from visionblocks.layers import Mlp

    assert type(vb.create_block("mixer_block", 16, 4).channel_mlp) is Mlp
    assert type(vb.create_block("resmlp_block", 16, 4).mlp) is Mlp
    vip = vb.create_block("weighted_permute_mlp", 48, (8, 8))
    assert type(vip.reweight) is Mlp and vip.reweight.fc1.out_features == 12    # C / 4 (paper)
    assert vb.create_block("weighted_permute_mlp", 48, (8, 8), rd_channels=5).reweight.fc1.out_features == 5
    with pytest.raises(ValueError, match="tokens"):
        vb.create_block("gmlp_block", 16, 4)(torch.randn(1, 5, 16))
