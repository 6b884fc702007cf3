"""Derived (non-persistent) buffers survive the meta device: built there, materialised with ``to_empty`` and loaded,
a module holds the values it was built with, not uninitialised memory (layers.DerivedBuffers)."""
import copy

import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks import testing as T
from visionblocks.layers import DerivedBuffers

BLOCKS = ["do_conv", "diverse_branch_block", "halo_attention", "het_conv", "aft_local"]


def _derived(m: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}" if n else k: v for n, mod in m.named_modules() if isinstance(mod, DerivedBuffers)
            for k, v in mod.named_buffers(recurse=False) if k not in mod.state_dict()}


def _poison(m: nn.Module) -> None:
    """What uninitialised memory may hold: huge values, indices far out of range."""
    for mod in m.modules():
        for k, v in mod._buffers.items():
            if v is not None and k not in mod.state_dict():
                v.fill_(True if v.dtype == torch.bool else 10 ** 6 if not v.is_floating_point() else 1e20)


@pytest.mark.parametrize("name", BLOCKS)
def test_block_built_on_meta_loads_exactly(name):
    info = vb.block_info(name)
    torch.manual_seed(0)
    ref = T.build(info).eval()
    assert _derived(ref), f"{name} has no derived buffer"
    inputs = T.make_inputs(info)
    with torch.device("meta"):
        m = T.build(info)
    assert all(v.is_meta for v in m.state_dict().values())
    m.to_empty(device="cpu")
    m.load_state_dict(ref.state_dict(), strict=True)
    m.eval()
    for k, v in _derived(ref).items():
        assert torch.equal(_derived(m)[k], v), k
    with torch.no_grad():
        assert torch.equal(m(*inputs), ref(*inputs))


@pytest.mark.parametrize("name", BLOCKS)
def test_derived_buffers_follow_to_and_dtype(name):
    m = T.build(vb.block_info(name)).eval()
    want = {k: v.clone() for k, v in _derived(m).items()}
    _poison(m)  # what to_empty leaves; any _apply recomputes
    m64 = m.double()
    for k, v in _derived(m64).items():
        assert v.dtype == (torch.float64 if want[k].is_floating_point() else want[k].dtype), k
        assert torch.equal(v, want[k].to(v.dtype)), k


def test_model_built_on_meta_loads_exactly():
    torch.manual_seed(0)
    ref = T.randomize_bn_stats(vb.create_model("dbb_resnet18", num_classes=10)).eval()
    with torch.device("meta"):
        m = vb.create_model("dbb_resnet18", num_classes=10)
    m.to_empty(device="cpu").load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m.eval()(x), ref(x))


def test_folded_do_conv_keeps_no_training_buffer():
    m = vb.create_block("do_conv", 8, 8).eval()
    vb.reparameterize(m)
    assert "d_diag" not in dict(m.named_buffers())
    m.double()
    assert "d_diag" not in dict(m.named_buffers())
    assert copy.deepcopy(m).conv.weight.dtype == torch.float64


def test_derived_buffers_stay_shared_after_share_memory():
    m = vb.create_block("halo_attention", 64, block_size=8, halo_size=3, num_heads=8, dim_head=16)
    m.share_memory()
    assert m.rel_idx.is_shared()


@pytest.mark.parametrize("name", vb.list_blocks())
def test_built_under_inference_mode_can_be_moved_and_cast(name):
    # as torch.nn's layers: a module built inside torch.inference_mode() can be cast and moved afterwards
    # (a derived buffer written in place raised "Inplace update to inference tensor outside InferenceMode")
    info = vb.block_info(name)
    torch.manual_seed(0)
    ref = T.build(info).eval()
    torch.manual_seed(0)
    with torch.inference_mode():
        m = T.build(info).eval()
    m.to("cpu").float()  # (torch.nn's own layers break after a real cast: torch 2.13 "do not track version counter")
    inputs = T.make_inputs(info)
    with torch.inference_mode():
        got, want = m(*inputs), ref(*inputs)
    torch.testing.assert_close(T.flatten_outputs(got), T.flatten_outputs(want))
    assert _derived(m).keys() == _derived(ref).keys()
