"""visionblocks.lazy: blocks that take their channel count from their first input (LazyModuleMixin semantics)."""
import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.lazy import LazyModuleMixin

import visionblocks as vb
from _reference import run_at_once
from visionblocks.surgery import LazyBlock, SurgeryError, lazy

X = torch.randn(2, 48, 14, 14)


def test_lazy_block_becomes_the_block():
    gate = lazy("cbam", reduction=8)
    assert isinstance(gate, LazyModuleMixin) and not list(gate.parameters())
    assert "cbam(<channels from the first input>, reduction=8)" in repr(gate)
    y = gate(X)
    ref = vb.create_block("cbam", 48, reduction=8)
    assert type(gate) is type(ref) and not isinstance(gate, LazyBlock)
    assert list(gate.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(gate.state_dict())
    assert torch.equal(ref(X), y) and torch.equal(gate(X), y)


def test_lazy_blocks_in_a_network_follow_its_width():
    def net(width):
        return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), lazy("se", reduction=4), lazy("acnet_block"),
                             nn.ReLU())
    for width in (8, 24):
        model = net(width)
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, width, 16, 16)
        assert model[1].fc1.in_channels == width and model[2].out_channels == width
        assert "1.fc1.weight" in model.state_dict() and "2.body.square.conv.weight" in model.state_dict()
        model.load_state_dict(copy.deepcopy(model).state_dict())


def test_moves_and_dtype_before_the_first_call_are_kept():
    gate = lazy("se").double()
    gate(X.double())
    assert all(p.dtype == torch.float64 for p in gate.parameters())
    gate = lazy("se")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gate(X.bfloat16())
    assert all(p.dtype == torch.float32 for p in gate.parameters())  # autocast inputs do not decide the dtype



def test_a_channels_last_first_input_gives_channels_last_convolution_weights():
    """Built from a channels-last map, the block's convolution weights are channels-last (as ``insert``/``replace``
    place a block in a channels-last network); from an NCHW one, NCHW."""
    for x, cl in ((X.contiguous(memory_format=torch.channels_last), True), (X, False)):
        block = lazy("acnet_block")
        y = block(x)
        ws = [m.weight for m in block.modules() if isinstance(m, nn.Conv2d)]
        assert all(w.is_contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format) for w in ws)
        assert any(not w.is_contiguous() for w in ws) == cl
        torch.testing.assert_close(block(X), y.contiguous(), rtol=1e-5, atol=1e-5)

def test_training_mode_hooks_and_framework_attributes_survive():
    gate = lazy("eca").eval()
    gate.i, gate.f = 9, -1  # what ultralytics' parser sets on a layer
    seen = []
    gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    gate(X)
    assert not gate.training and (gate.i, gate.f) == (9, -1)
    gate(X)
    assert seen == [X.shape, X.shape]


def test_wrong_arguments_fail_at_construction():
    with pytest.raises(SurgeryError, match=r"'cbam': unknown arguments \['squeeze'\]"):
        lazy("cbam", squeeze=4)
    with pytest.raises(SurgeryError, match=r"'se' takes at most 4 arguments after the channel count"):
        lazy("se", 16, None, "relu", "sigmoid", 5)
    with pytest.raises(SurgeryError, match="layout 'nlc'"):
        lazy("self_attention")
    with pytest.raises(SurgeryError, match=r"from a \(B, C, H, W\) input, got \(2, 49, 64\)"):
        lazy("se")(torch.randn(2, 49, 64))


def test_state_dict_before_the_first_call_is_refused_clearly():
    gate = lazy("se")
    with pytest.raises(RuntimeError, match="not built yet"):
        gate.load_state_dict(vb.create_block("se", 48).state_dict())
    gate.materialize(48)
    gate.load_state_dict(vb.create_block("se", 48).state_dict())


@pytest.mark.slow
@pytest.mark.parametrize("first_call", ["eager", "compiled"])
def test_torch_compile(first_call):
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), lazy("cbam", reduction=4))
    x = torch.randn(2, 3, 12, 12)
    eager = model(x) if first_call == "eager" else None
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(x)  # when the first call is compiled, torch.compile builds the block (cls_to_become) first
    assert type(model[1]).__name__ == "CBAM"
    torch.testing.assert_close(out, model(x) if eager is None else eager)


def test_bad_argument_values_fail_at_construction_channel_dependent_ones_wait_for_the_input():
    for args, kwargs, match in (("cbam", {"reduction": -1}, "reduction must be a positive number"),
                                ("cbam", {"kernel_size": 4}, "kernel_size must be a positive odd int"),
                                ("se", {"act_layer": "nope"}, "unknown activation 'nope'"),
                                ("vanilla_conv", {"kernel_size": -3}, "kernel_size")):
        with pytest.raises(SurgeryError, match=rf"cannot build block '{args}' for lazy\('{args}'\).*{match}"):
            lazy(args, **kwargs)
    # valid or not depending on the channel count: decided by the first input, as before
    state = torch.get_rng_state()
    gates = [(lazy("sge", groups=48), 96), (lazy("inception_block", ch1x1=32), 224), (lazy("group_conv", groups=5), 10)]
    assert torch.equal(torch.get_rng_state(), state)   # the check draws no random numbers
    for gate, c in gates:
        assert gate(torch.randn(1, c, 8, 8)).shape[1] == c and not isinstance(gate, LazyBlock)
    with pytest.raises(SurgeryError, match="inception_block"):
        lazy("inception_block", ch1x1=32)(torch.randn(1, 48, 8, 8))


def test_a_failed_first_call_leaves_the_module_lazy():
    gate = lazy("cbam", reduction=8)
    gate.i = 7
    seen = []
    gate.register_forward_pre_hook(lambda m, a: seen.append("pre"))
    gate.register_forward_hook(lambda m, a, out: seen.append("post"))
    model = nn.Sequential(nn.Identity(), gate)
    with pytest.raises(TypeError, match="floating-point input"):
        model(torch.ones(2, 48, 14, 14, dtype=torch.long))   # the block's forward refuses it
    assert type(model[1]) is LazyBlock and isinstance(model[1], LazyModuleMixin) and not list(gate.parameters())
    assert gate.i == 7 and seen == ["pre"]
    with pytest.raises(RuntimeError, match="not built yet"):   # still refuses a state dict, as a lazy module does
        gate.load_state_dict(vb.create_block("cbam", 48, reduction=8).state_dict())
    y = model(X)   # the next call materialises it, hooks and attributes kept
    ref = vb.create_block("cbam", 48, reduction=8)
    assert type(gate) is type(ref) and list(gate.state_dict()) == list(ref.state_dict()) and gate.i == 7
    assert seen == ["pre", "pre", "post"] and y.shape == X.shape
    assert not gate._forward_pre_hooks_with_kwargs   # the initialisation hook is gone


def test_lazy_first_call_from_several_threads_at_once():
    """A network shared by a server's threads: the first calls, made at once, build the block once and all
    return its output (two threads used to build it again, on a module already turned into the block:
    AttributeError in 3 of 4 trials)."""
    x = torch.randn(2, 16, 8, 8)
    for _ in range(20):
        torch.manual_seed(0)
        gate = lazy("cbam").eval()

        def call(gate=gate):
            with torch.no_grad():
                return gate(x)

        outs, errors = run_at_once(call)
        assert not errors, errors[0]
        assert type(gate).__name__ == "CBAM" and len(outs) == 4
        with torch.no_grad():
            ref = gate(x)
        assert all(torch.equal(o, ref) for o in outs)


def test_torch_fx_traces_an_unbuilt_lazy_block_as_a_leaf():
    """As torch's own lazy layers: one call_module node holding the same module, built when the traced network
    first runs (tracing used to call the block's channel inference with a Proxy: 'got Proxy')."""
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), lazy("cbam", reduction=4), nn.ReLU())
    gm = torch.fx.symbolic_trace(net)
    assert [n.target for n in gm.graph.nodes if n.op == "call_module"] == ["0", "1", "2"]
    assert type(net[1]) is LazyBlock
    x = torch.randn(2, 3, 12, 10)
    y = gm(x)   # builds the block (the same module object as net's)
    assert type(net[1]).__name__ == "CBAM" and gm.get_submodule("1") is net[1]
    assert torch.equal(y, net(x))
    with pytest.raises(TypeError, match="torch.fx cannot trace.*root"):
        torch.fx.symbolic_trace(lazy("cbam"))


def _ddp(net):
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(net)


def _fully_shard(net):
    from torch.distributed.fsdp import fully_shard
    return fully_shard(net)


@pytest.mark.parametrize("wrap, name", [(_ddp, "DistributedDataParallel"), (_fully_shard, "fully_shard")])
def test_an_unbuilt_lazy_block_inside_a_distributed_wrapper_is_refused(wrap, name, tmp_path):
    """DDP and FSDP take the network's parameters when they wrap it: a block built by its first call afterwards
    trained apart on every rank (never synchronised, its gradients never averaged), silently. torch refuses its own
    unbuilt lazy layers at DDP's wrap; ours are refused at the first call, and a network built by one forward first
    is wrapped as usual."""
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), lazy("cbam", reduction=4))
        x = torch.randn(2, 3, 8, 8)
        with pytest.raises(SurgeryError, match=f"inside a network that {name}.*Run one forward"):
            wrap(net)(x)
        assert type(net[1]) is LazyBlock   # left lazy
        net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), lazy("cbam", reduction=4))
        net(x)                             # built before wrapping: the wrapper takes its parameters too
        wrapped = wrap(net)
        wrapped(x).sum().backward()
        assert all(p.grad is not None for p in net[1].parameters())
        if name == "fully_shard":          # managed: sharded as DTensors like the convolution's
            assert {type(p).__name__ for p in net.parameters()} == {"DTensor"}
        else:
            assert set(map(id, net[1].parameters())) <= {id(p) for p in wrapped._module_parameters}
    finally:
        dist.destroy_process_group()
