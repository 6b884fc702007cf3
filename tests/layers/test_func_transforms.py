"""The blocks whose fast paths are custom autograd Functions (outlook attention's window gather/fold,
``cat_channels``, shuffle attention's channels-last gate) run under ``torch.func`` transforms: per-sample
gradients with ``vmap(grad(...))`` and ``functional_call`` equal autograd's (they raised "must override the
setup_context staticmethod")."""
import pytest
import torch

import visionblocks as vb

CASES = [("outlook_attention", (36,), {"num_heads": 6}, (3, 36, 7, 7), False),
         ("self_calibrated_conv", (16, 16), {}, (3, 16, 8, 8), True),     # cat_channels on channels-last maps
         ("shuffle_attention", (64,), {"groups": 8}, (3, 64, 8, 8), True)]


@pytest.mark.parametrize("name,args,kwargs,shape,channels_last", CASES, ids=[c[0] for c in CASES])
def test_func_grad_and_per_sample_grads(name, args, kwargs, shape, channels_last):
    torch.manual_seed(0)
    block = vb.create_block(name, *args, **kwargs).double().eval()
    x = torch.randn(*shape, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    params = {k: v.detach() for k, v in block.named_parameters()}

    def loss(p, xs):
        return torch.func.functional_call(block, p, (xs,)).square().sum()

    grads = torch.func.grad(loss)(params, x)
    loss(dict(block.named_parameters()), x).backward()
    for k, p in block.named_parameters():
        torch.testing.assert_close(grads[k], p.grad, rtol=1e-10, atol=1e-12, msg=k)
    per_sample = torch.func.vmap(torch.func.grad(lambda p, xi: loss(p, xi[None])), in_dims=(None, 0))(params, x)
    for k, p in block.named_parameters():
        block.zero_grad()
        loss(dict(block.named_parameters()), x[1:2]).backward()
        torch.testing.assert_close(per_sample[k][1], p.grad, rtol=1e-10, atol=1e-12, msg=k)


SMALL = [("outlook_attention", (12,), {"num_heads": 2}, (1, 12, 3, 3), False),
         ("outlook_attention", (12,), {"num_heads": 2}, (1, 12, 3, 3), True),
         ("self_calibrated_conv", (4, 4), {}, (1, 4, 4, 4), True),
         ("shuffle_attention", (8,), {"groups": 2}, (1, 8, 3, 3), True)]


@pytest.mark.parametrize("name,args,kwargs,shape,channels_last", SMALL,
                         ids=[f"{c[0]}-{'cl' if c[4] else 'nchw'}" for c in SMALL])
def test_jacobians_and_hessian_equal_autograds(name, args, kwargs, shape, channels_last):
    # jacrev (vmap over the backward), jacfwd (forward mode: the Functions' jvp) and hessian (forward over reverse)
    # against torch.autograd.functional, which differentiates by plain backward passes (they raised: no jvp, a
    # backward graph the transform could not see, a layout query under vmap)
    torch.manual_seed(0)
    block = vb.create_block(name, *args, **kwargs).double().eval()
    with torch.no_grad():
        for p in block.parameters():  # away from the zero-initialised gates
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(*shape, dtype=torch.float64)
    if channels_last:  # (made outside: torch's vmap cannot make a channels-last copy)
        x = x.contiguous(memory_format=torch.channels_last)

    def f(t):
        return block(t)

    ref = torch.autograd.functional.jacobian(f, x)
    torch.testing.assert_close(torch.func.jacrev(f)(x), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.func.jacfwd(f)(x), ref, rtol=1e-10, atol=1e-12)

    def g(t):
        return f(t).square().sum()

    torch.testing.assert_close(torch.func.hessian(g)(x), torch.autograd.functional.hessian(g, x),
                               rtol=1e-9, atol=1e-11)


def test_cat_channels_jacobians():
    from visionblocks.layers import cat_channels
    a, b = (torch.randn(1, c, 3, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
            for c in (2, 3))

    def f(p, q):
        return cat_channels([p, q])

    eye = torch.eye(5 * 9, dtype=torch.float64).view(1, 5, 3, 3, 1, 5, 3, 3)
    for jac in (torch.func.jacrev(f, argnums=(0, 1))(a, b), torch.func.jacfwd(f, argnums=(0, 1))(a, b)):
        torch.testing.assert_close(jac[0], eye[..., :2, :, :], rtol=0, atol=0)
        torch.testing.assert_close(jac[1], eye[..., 2:, :, :], rtol=0, atol=0)
