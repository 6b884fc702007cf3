"""torch.fx symbolic tracing of networks that contain blocks: every block is a leaf (one call_module node), as
torch.nn's layers are, so FX-based tools (torchvision's create_feature_extractor, FX quantization) work on them;
the traced graph computes what the network does."""
import pytest
import torch
import torch.fx
import torch.nn as nn

import visionblocks as vb
from visionblocks import testing as T


class _Holder(nn.Module):
    def __init__(self, block: nn.Module):
        super().__init__()
        self.pre = nn.Identity()
        self.block = block

    def forward(self, x):
        return self.block(self.pre(x))


class _Holder2(_Holder):
    def forward(self, x, y):  # (FX traces fixed arities only)
        return self.block(self.pre(x), y)


@pytest.mark.parametrize("name", vb.list_blocks())
def test_block_is_an_fx_leaf(name):
    info = vb.block_info(name)
    torch.manual_seed(0)
    inputs = T.make_inputs(info)
    assert len(inputs) in (1, 2), f"{name}: {len(inputs)} inputs"
    net = (_Holder if len(inputs) == 1 else _Holder2)(T.build(info)).eval()
    gm = torch.fx.symbolic_trace(net)
    calls = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    assert "block" in calls, calls
    with torch.no_grad():
        for a, b in zip(T.flatten_outputs(gm(*inputs)), T.flatten_outputs(net(*inputs))):
            assert torch.equal(a, b)


def test_block_as_the_root_of_a_trace_is_refused_clearly():
    with pytest.raises(TypeError, match=r"torch.fx cannot trace a visionblocks block as the root module.*"
                                         r"torch.export"):
        torch.fx.symbolic_trace(vb.create_block("cbam", 16))


def test_block_inside_a_network_traces_and_stays_checked_in_eager():
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), vb.create_block("cbam", 16), nn.ReLU()).eval()
    gm = torch.fx.symbolic_trace(net)
    x = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(gm(x), net(x))
    with pytest.raises(ValueError, match="CBAM"):  # the leaf runs the block's forward, checks included
        gm.get_submodule("1")(torch.randn(2, 8, 9, 11))


def test_model_trace_is_refused_with_the_alternatives():
    with pytest.raises(TypeError, match=r"ResNet: torch.fx cannot trace a visionblocks model.*features_only=True.*"
                                         r"torch.export.export.*leaf_modules"):
        torch.fx.symbolic_trace(vb.create_model("resnet18", num_classes=3))


def test_model_as_a_leaf_inside_a_traced_network():
    class Leafy(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, vb.models.ModelBase) or super().is_leaf_module(m, qualname)
    net = nn.Sequential(nn.Identity(), vb.create_model("resnet18", num_classes=3)).eval()
    gm = torch.fx.GraphModule(net, Leafy().trace(net))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(gm(x), net(x))


@pytest.mark.parametrize("name", vb.list_blocks())
def test_jit_trace_at_the_example_size(name):
    # torch.jit.trace (deployment's older path) records every block; the traced module gives eager's output
    import warnings
    info = vb.block_info(name)
    m = T.build(info).eval()
    inputs = T.make_inputs(info)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: the sizes the trace records
        traced = torch.jit.trace(m, inputs, check_trace=False)
        T._close(T.flatten_outputs(traced(*inputs)), T.flatten_outputs(m(*inputs)), f"{name}: traced vs eager")


@pytest.mark.parametrize("name,traced_at,others", [
    ("halo_attention", (16, 16), [(17, 23), (8, 8), (32, 32)]),          # its block count and crop were floats
    ("mobilevitv2_attention", (17, 23), [(32, 32), (16, 16), (5, 48)]),   # traced padded: the pad stays symbolic
])
def test_jit_trace_follows_the_size(name, traced_at, others):
    import warnings
    info = vb.block_info(name)
    m = T.build(info).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(m, T.make_inputs(info, size=traced_at), check_trace=False)
        for size in others:
            x = T.make_inputs(info, size=size, batch=3)
            T._close(T.flatten_outputs(traced(*x)), T.flatten_outputs(m(*x)), f"{name}: traced at {traced_at}, "
                     f"run at {size}")
