"""Blocks that run a child layer's weights directly (a fast path) must still behave as if they called it when the
child is not plain (``visionblocks.layers.is_plain``): pruned (a forward pre-hook recomputes its weight), hooked,
or replaced by a quantized layer."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import prune

import visionblocks as vb
from visionblocks.layers import is_hooked, is_plain, pointwise_forward, pointwise_linear, token_linear
from visionblocks.testing import build, make_inputs, randomize_params

# every block that used to bypass a weight-carrying child, with one such child
BYPASSED = {
    "se": "fc1",
    "eca": "conv",
    "bam": "channel_gate.mlp.fc1",
    "cbam": "channel_gate.mlp.fc2",
    "pyramid_split_attention": "se.fc1",
    "mbconv": "attn.fc1",
    "coord_attention": "conv1.conv",
    "cot": "fuse.0.conv",
    "csra": "heads.0.classifier",
    "double_attention": "theta",
    "emsa": "transform_conv",
    "external_attention": "mk",
    "outlook_attention": "attn",
    "polarized_attention_parallel": "channel_gate.wz",
    "polarized_attention_sequential": "channel_gate.wz",
    "selective_kernel_conv": "select",
    "split_attention_conv": "fc2",
    "mixer_block": "token_mlp.fc1",
    "resmlp_block": "token_fc",
    "gmlp_block": "sgu.proj",
    "s2_attention": "mlp2",
    "weighted_permute_mlp": "proj",
    "smlp_block": "proj_h",
    "shuffle_attention": "gn",
}
WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Linear)


def _block(name: str, dtype: torch.dtype = torch.float64):
    info = vb.block_info(name)
    model = build(info).eval().to(dtype)
    return model, tuple(t.to(dtype) for t in make_inputs(info))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_is_plain():
    conv = nn.Conv2d(4, 4, 1)
    assert is_plain(conv, nn.Conv2d) and not is_hooked(conv)
    assert not is_plain(conv, nn.Linear)
    handle = conv.register_forward_pre_hook(lambda m, i: None)
    assert is_hooked(conv) and not is_plain(conv, nn.Conv2d)
    handle.remove()
    assert is_plain(conv, nn.Conv2d)
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        assert not is_plain(conv, nn.Conv2d)
    finally:
        handle.remove()
    assert is_plain(conv, nn.Conv2d)


def test_pruned_se_trains_and_stays_pruned():
    torch.manual_seed(0)
    se = vb.create_block("se", 32)
    prune.l1_unstructured(se.fc1, "weight", amount=0.5)
    mask = se.fc1.weight_mask.clone()
    opt = torch.optim.SGD(se.parameters(), lr=0.1)
    x = torch.randn(2, 32, 6, 6)
    for _ in range(3):
        opt.zero_grad()
        se(x).square().mean().backward()
        opt.step()
    y = se(x)
    assert torch.all(se.fc1.weight[mask == 0] == 0)
    w1 = se.fc1.weight_orig * mask        # the pruned weight, by hand
    s = x.mean((2, 3))
    z = F.linear(F.relu(F.linear(s, w1.flatten(1), se.fc1.bias)), se.fc2.weight.flatten(1), se.fc2.bias)
    torch.testing.assert_close(y, x * torch.sigmoid(z)[:, :, None, None])


@pytest.mark.parametrize("name", ["mixer_block", "resmlp_block"])
def test_quantize_dynamic_blocks(name):
    model, inputs = _block(name, torch.float32)
    with torch.no_grad():
        ref = model(*inputs)
        out = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)(*inputs)
    assert _rel(out, ref) < 0.05


def test_quantize_dynamic_mixer_model():
    torch.manual_seed(0)
    model = vb.create_model("mixer_s16", num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref = model(x)
        out = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)(x)
    assert _rel(out, ref) < 0.05


@pytest.mark.parametrize("name", sorted(BYPASSED))
def test_hooks_fire_once_and_leave_output(name):
    """(c) a forward hook on each weight-carrying child (the bypassed one among them) fires once per forward;
    (d) hooks that return nothing leave the output unchanged."""
    model, inputs = _block(name)
    with torch.no_grad():
        ref = model(*inputs)
    children = {n: m for n, m in model.named_modules() if isinstance(m, WEIGHTED) or n == BYPASSED[name]}
    calls = dict.fromkeys(children, 0)
    pre_calls = dict.fromkeys(children, 0)
    for n, m in children.items():
        m.register_forward_hook(lambda mod, args, out, n=n: calls.__setitem__(n, calls[n] + 1))
        m.register_forward_pre_hook(lambda mod, args, n=n: pre_calls.__setitem__(n, pre_calls[n] + 1))
    with torch.no_grad():
        out = model(*inputs)
    assert calls == dict.fromkeys(children, 1)
    assert pre_calls == dict.fromkeys(children, 1)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("name", vb.list_blocks())
def test_every_module_with_parameters_is_called(name, layout, grad):
    """Every submodule that holds parameters of its own (norms included, not only the weighted layers above) is
    called when it is hooked, in both layouts and with and without autograd: a block that reads such a child's
    parameters without calling it would skip what torch's tools put on it (shuffle attention's GroupNorm did)."""
    model, inputs = _block(name, torch.float32)
    owners = [n for n, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]
    called = set()
    for n in owners:
        model.get_submodule(n).register_forward_pre_hook(lambda mod, args, n=n: called.add(n))
    if layout == "channels_last":
        inputs = tuple(t.to(memory_format=torch.channels_last) if t.dim() == 4 else t for t in inputs)
    with torch.set_grad_enabled(grad):
        model(*inputs)
    assert called == set(owners), f"never called: {sorted(set(owners) - called)}"


@pytest.mark.parametrize("name", sorted(BYPASSED))
def test_hook_output_is_used(name):
    """A forward hook that changes the bypassed child's output changes the block's output (the child's result
    is the one the block uses)."""
    model, inputs = _block(name)
    randomize_params(model, seed=1, add=True)  # (no gate left constant at its initialisation: shuffle attention's W2 = 0)
    child = model.get_submodule(BYPASSED[name])
    with torch.no_grad():
        ref = model(*inputs)
        child.register_forward_hook(lambda mod, args, out: out.sin() * 3.0 + 0.5)  # not affine: a norm after it
        out = model(*inputs)
    assert not torch.allclose(out, ref)


def test_global_hook_fires():
    model, inputs = _block("se")
    seen = []
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(m))
    try:
        model(*inputs)
    finally:
        handle.remove()
    assert model.fc1 in seen and model.fc2 in seen


def test_gfnet_block_filter_hook():
    from visionblocks.models.gfnet import GFNetBlock
    torch.manual_seed(0)
    block = GFNetBlock(16, h=4, w=3).double().eval()
    x = torch.randn(2, 4, 4, 16, dtype=torch.float64)
    with torch.no_grad():
        ref = block(x)
    calls = []
    block.filter.register_forward_hook(lambda m, i, o: calls.append(1))
    with torch.no_grad():
        out = block(x)
    assert calls == [1]
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_helpers_fall_back_to_calling():
    torch.manual_seed(0)
    conv, linear = nn.Conv2d(6, 5, 1), nn.Linear(7, 3)
    seq = nn.Sequential(nn.Conv2d(6, 6, 1), nn.ReLU(), conv)
    x, t = torch.randn(2, 4, 6), torch.randn(2, 7, 6)
    ref_pl, ref_pf, ref_tl = pointwise_linear(x, conv), pointwise_forward(x[:, 0], seq), token_linear(t, linear)
    calls = []
    for m in (conv, linear, seq):
        m.register_forward_hook(lambda mod, args, out: calls.append(mod))
    torch.testing.assert_close(pointwise_linear(x, conv), ref_pl)
    torch.testing.assert_close(pointwise_forward(x[:, 0], seq), ref_pf)
    torch.testing.assert_close(token_linear(t, linear), ref_tl)
    assert calls.count(conv) == 2 and calls.count(seq) == 1 and calls.count(linear) == 1


@pytest.mark.parametrize("name", vb.list_models())
def test_hooks_on_every_block_inside_a_model_fire(name):
    # a model may run a block through a faster form of it (GFNet's, ViP's channels-last forms, ResT's token form):
    # a hooked block is called as a module instead, once per forward, with the same output
    from visionblocks.testing import model_test_size
    info = vb.model_info(name)
    torch.manual_seed(0)
    model = vb.create_model(name, num_classes=5).eval()
    block_classes = tuple({vb.block_info(b).cls for b in vb.list_blocks()})
    blocks = [m for m in model.modules() if isinstance(m, block_classes)]
    x = torch.randn(1, 3, *model_test_size(info))
    with torch.no_grad():
        ref = model(x)
    calls, kept = {id(b): 0 for b in blocks}, []

    def hook(m, i, o):
        calls[id(m)] += 1
        kept.extend((type(m).__name__, t, t.clone()) for t in (o if isinstance(o, (tuple, list)) else (o,))
                    if t is not None)  # octave convolutions: (high, None)

    for b in blocks:
        b.register_forward_hook(hook)
    with torch.no_grad():
        out = model(x)
    missed = sorted({type(b).__name__ for b in blocks if calls[id(b)] != 1})
    assert not missed, f"{name}: hooks of {missed} did not fire exactly once"
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    # what a hook keeps is the block's output: nothing later in the network writes into it in place (a residual
    # sum accumulated into it under no_grad did: SE's stored output read relu(se(y) + shortcut))
    changed = sorted({n for n, t, copy in kept if not torch.equal(t, copy)})
    assert not changed, f"{name}: the outputs of {changed} kept by a forward hook were modified after it returned"


@pytest.mark.parametrize("grad", [False, True])
def test_branch_outputs_kept_by_hooks_stay_unmodified(grad):
    # the training form of a re-parameterizable block sums its branches: never into a branch's own output
    from visionblocks.blocks.reparam._rep_conv import Branches
    names = [n for n in vb.list_blocks() if any(isinstance(m, Branches) for m in build(vb.block_info(n)).modules())]
    assert {"repvgg_block", "acnet_block", "diverse_branch_block"} <= set(names)
    for name in names:
        model, inputs = _block(name)
        kept = []
        for body in (m for m in model.modules() if isinstance(m, Branches)):
            for branch in body.values():
                branch.register_forward_hook(lambda m, i, o: kept.append((o, o.clone())))
        with torch.set_grad_enabled(grad):
            model(*inputs)
        assert kept and all(torch.equal(o, copy) for o, copy in kept), name


def _keep_every_layer_output(model: nn.Module) -> list:
    """Switch off in-place activations (torch.nn's own convention) and hook every layer below ``model``: the list
    fills with (layer class, tensor, copy of the tensor) for its inputs and its output at each forward."""
    for m in model.modules():
        if isinstance(getattr(m, "inplace", None), bool):
            m.inplace = False
    kept = []

    def hook(m, i, o):
        for t in (*i, *(o if isinstance(o, (tuple, list)) else (o,))):
            if isinstance(t, torch.Tensor):
                kept.append((type(m).__name__, t, t.clone()))

    for m in model.modules():
        if m is not model:
            m.register_forward_hook(hook)
    return kept


def _changed(kept: list) -> list[str]:
    return sorted({n for n, t, copy in kept if not torch.equal(t, copy)})


@pytest.mark.parametrize("name", vb.list_blocks())
def test_no_child_output_is_written_after_it_is_returned(name):
    # a forward hook on any layer inside a block keeps that layer's inputs and output: the block writes in place only
    # into tensors of its own
    model, inputs = _block(name)
    kept = _keep_every_layer_output(model)
    for grad in (False, True):
        kept.clear()
        with torch.set_grad_enabled(grad):
            model(*inputs)
        assert not _changed(kept), \
            f"{name} (grad {grad}): the inputs or outputs of {_changed(kept)} were modified after the call"


@pytest.mark.parametrize("name", vb.list_models())
def test_no_layer_output_inside_a_model_is_written_after_it_is_returned(name):
    # as above, for every layer of every model, in inference (where in-place sums used to be taken)
    from visionblocks.testing import model_test_size
    torch.manual_seed(0)
    model = vb.create_model(name, num_classes=5).eval()
    kept = _keep_every_layer_output(model)
    with torch.no_grad():
        model(torch.randn(1, 3, *model_test_size(vb.model_info(name))))
    assert not _changed(kept), f"{name}: the inputs or outputs of {_changed(kept)} were modified after the call"
