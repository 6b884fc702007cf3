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
