"""The blocks whose fast paths are custom autograd Functions (outlook attention's window gather/fold,
``cat_channels``, shuffle attention's channels-last gate) run under ``torch.func`` transforms: per-sample
gradients with ``vmap(grad(...))`` and ``functional_call`` equal autograd's (they raised "must override the
setup_context staticmethod")."""
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

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


# blocks whose fast paths change the layout (a channels-last copy under autograd) or write with out= without
# autograd: under vmap no layout but the default can be asked for or made, and out= ops have no batching rule nor
# forward derivative (they raised NYI / "Trying to use forward AD"); on the CPU SDPA's fused kernel has no forward
# derivative (hessian through self-attention raised)
TRANSFORMED = [("cbam", (8,), {}), ("triplet_attention", (4,), {}), ("involution", (16, 16, 3, 1), {}),
               ("selective_kernel_conv", (32,), {}), ("danet", (8,), {}), ("self_attention", (8,), {"num_heads": 2}),
               ("halo_attention", (16,), {"block_size": 2, "halo_size": 1, "num_heads": 2, "dim_head": 8}),
               ("shuffle_attention", (8,), {"groups": 2}), ("emsa", (16,), {"num_heads": 2, "sr_ratio": 2})]


def _frozen_block(name, args, kwargs):
    torch.manual_seed(0)
    block = vb.create_block(name, *args, **kwargs).double().eval().requires_grad_(False)
    with torch.no_grad():
        for p in block.parameters():  # away from the zero-initialised gates
            p.add_(0.3 * torch.randn_like(p))
    shape = (2, 9, args[0]) if vb.block_info(name).layout == "nlc" else (2, args[0], 4, 4)
    return block, torch.randn(*shape, dtype=torch.float64)


@pytest.mark.parametrize("name,args,kwargs", TRANSFORMED, ids=[c[0] for c in TRANSFORMED])
def test_vmap_jvp_and_hessian_through_fast_paths(name, args, kwargs):
    block, x = _frozen_block(name, args, kwargs)
    with torch.no_grad():
        ref = block(x)
    torch.testing.assert_close(torch.func.vmap(lambda xi: block(xi[None])[0])(x), ref, rtol=1e-12, atol=1e-12)
    u = torch.randn_like(x)
    with torch.no_grad():  # forward mode without autograd: the out= paths' condition
        fd = (block(x + 1e-6 * u) - block(x - 1e-6 * u)) / 2e-6
        _, tangent = torch.func.jvp(block, (x,), (u,))
        with torch.autograd.forward_ad.dual_level():
            dual = torch.autograd.forward_ad.unpack_dual(block(torch.autograd.forward_ad.make_dual(x, u))).tangent
    torch.testing.assert_close(tangent, fd, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(dual, fd, rtol=1e-6, atol=1e-7)
    x1 = x[:1]

    def g(t):
        return block(t).square().sum()

    with sdpa_kernel(SDPBackend.MATH):  # (the reference differentiates twice by autograd: see the test below)
        ref = torch.autograd.functional.hessian(g, x1)
    torch.testing.assert_close(torch.func.hessian(g)(x1), ref, rtol=1e-9, atol=1e-11)


def test_double_backward_through_attention_under_the_math_backend():
    # torch's fused CPU attention kernel has no double backward; the documented way (docs/plug_in.md) is SDPA's
    # math path, which the blocks' attention obeys: a gradient penalty's second derivative against finite differences
    block, x = _frozen_block("self_attention", (8,), {"num_heads": 2})
    x.requires_grad_(True)
    u = torch.randn_like(x)

    def grad_dot(t):
        (g,) = torch.autograd.grad(block(t).square().sum(), t, create_graph=True)
        return g

    with sdpa_kernel(SDPBackend.MATH):
        (hvp,) = torch.autograd.grad(grad_dot(x), x, u)
        fd = (grad_dot(x + 1e-6 * u) - grad_dot(x - 1e-6 * u)) / 2e-6
    torch.testing.assert_close(hvp, fd.detach(), rtol=1e-5, atol=1e-7)
