"""Structural re-parameterization is exact, for every registered re-parameterizable block and every model that
contains one (found from the registry, so a new entry is covered without editing this file).

In eval mode, with random weights and random BatchNorm statistics, ``visionblocks.reparameterize`` leaves the
output unchanged (1e-5 relative in float32, 1e-10 in float64); folding twice is a no-op; folding in training
mode raises; a folded ``conv`` block is one convolution with no BatchNorm; a state_dict saved after folding
loads into the entry built with ``deploy=True`` and gives the same output.
"""
from __future__ import annotations

import copy
import functools
import inspect
import io

import pytest
import torch

import visionblocks as vb
from visionblocks import testing as T
from visionblocks.reparam import is_reparameterizable


def _rep_blocks() -> list[str]:
    return [n for n in vb.list_blocks() if is_reparameterizable(vb.block_info(n).cls)]


def _rep_models() -> list[str]:
    names = []
    for n in vb.list_models():
        try:
            with torch.device("meta"):
                m = vb.create_model(n)
        except Exception:  # a model that cannot be built on the meta device: build it for real
            try:
                m = vb.create_model(n)
            except Exception:  # a broken constructor fails its own contract tests; nothing to fold here
                continue
        if any(is_reparameterizable(x) for x in m.modules()):
            names.append(n)
    return names


BLOCKS = _rep_blocks()
MODELS = _rep_models()
ENTRIES = [("block", n) for n in BLOCKS] + [("model", n) for n in MODELS]
IDS = [f"{k}:{n}" for k, n in ENTRIES]


def _accepts_deploy(fn) -> bool:
    """Whether a model constructor takes ``deploy=`` (by name, or through ``**kwargs``)."""
    params = inspect.signature(fn).parameters.values()
    return any(p.name == "deploy" or p.kind is p.VAR_KEYWORD for p in params)


def _make(kind: str, name: str, deploy: bool = False, seed: int = 0) -> torch.nn.Module:
    """The entry's training form (or deploy form), with random parameters and BN statistics."""
    torch.manual_seed(seed)
    if kind == "block":
        info = vb.block_info(name)
        kwargs = dict(info.example.kwargs)
        if deploy:
            kwargs["deploy"] = True
        m = info.cls(*info.example.args, **kwargs)
    else:
        info = vb.model_info(name)
        if deploy or _accepts_deploy(info.fn):
            m = vb.create_model(name, num_classes=10, deploy=deploy)  # the protocol's flag
        else:
            m = vb.create_model(name, num_classes=10)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in m.parameters():
            # blocks: perturb everything; models: only constant-initialised tensors (zeros, ones), which
            # would hide mistakes (e.g. DBB's identity-based 1x1), the rest is already random
            if kind == "block" or p.numel() == 1 or bool(p.min() == p.max()):
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return T.randomize_bn_stats(m, seed=seed + 2)


@functools.lru_cache(maxsize=None)
def _cached(kind: str, name: str, deploy: bool, seed: int) -> torch.nn.Module:
    return _make(kind, name, deploy, seed)


def _build(kind: str, name: str, deploy: bool = False, seed: int = 0) -> torch.nn.Module:
    """A fresh copy (tests fold in place) of the cached randomized entry."""
    return copy.deepcopy(_cached(kind, name, deploy, seed))


@functools.lru_cache(maxsize=None)
def _folded_cached(kind: str, name: str) -> torch.nn.Module:
    m = _build(kind, name).eval()
    assert vb.reparameterize(m) is m, "reparameterize must return the module it folded in place"
    return m


def _folded(kind: str, name: str) -> torch.nn.Module:
    """A fresh copy of the entry's training form folded in eval mode (float32)."""
    return copy.deepcopy(_folded_cached(kind, name))


def _inputs(kind: str, name: str, dtype=torch.float32) -> tuple[torch.Tensor, ...]:
    if kind == "block":
        return T.make_inputs(vb.block_info(name), dtype=dtype)
    info = vb.model_info(name)
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, info.input_size[0], *T.model_test_size(info), generator=g, dtype=torch.float64).to(dtype),)


def _out(m, inputs) -> list[torch.Tensor]:
    with torch.no_grad():
        return T.flatten_outputs(m(*inputs))


def _rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(((x.double() - y.double()).abs().max() / y.double().abs().max().clamp_min(1e-30)).item()
               for x, y in zip(a, b))


def _foldable(m: torch.nn.Module) -> list[torch.nn.Module]:
    return [x for x in m.modules() if is_reparameterizable(x)]


def test_something_is_covered():
    assert {"repvgg_block", "acnet_block", "diverse_branch_block"} <= set(BLOCKS)
    assert {"repvgg_a0", "acnet_resnet18", "dbb_resnet18"} <= set(MODELS)


@pytest.mark.parametrize("kind,name", ENTRIES, ids=IDS)
def test_reparameterize_is_exact(kind, name):
    """float32: 1e-5 relative (max error over max output); float64: 1e-10."""
    m32 = _build(kind, name).eval()
    m64 = copy.deepcopy(m32).double()
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        m = m32 if dtype == torch.float32 else m64
        assert any(not getattr(x, "is_reparameterized", False) for x in _foldable(m)), \
            f"{name}: nothing left to fold in the training form"
        inputs = _inputs(kind, name, dtype)
        before = _out(m, inputs)
        if dtype == torch.float32:
            m = _folded(kind, name)  # the same module, folded in place (cached for the tests below)
        else:
            assert vb.reparameterize(m) is m
        assert all(getattr(x, "is_reparameterized", True) for x in _foldable(m)), f"{name}: a module stayed unfolded"
        after = _out(m, inputs)
        assert all(t.dtype == dtype for t in after)
        err = _rel(after, before)
        assert err <= tol, f"{name}: folding changed the {dtype} output by {err:.3g} (relative), tolerance {tol:g}"


@pytest.mark.parametrize("kind,name", ENTRIES, ids=IDS)
def test_folding_twice_is_a_no_op(kind, name):
    m = _folded(kind, name)
    inputs = _inputs(kind, name)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    first = _out(m, inputs)
    vb.reparameterize(m)
    for x in _foldable(m):
        x.reparameterize()  # direct calls too
    sd2 = m.state_dict()
    assert sd.keys() == sd2.keys()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert all(torch.equal(a, b) for a, b in zip(first, _out(m, inputs)))


@pytest.mark.parametrize("kind,name", ENTRIES, ids=IDS)
def test_folding_in_training_mode_raises(kind, name):
    m = _build(kind, name).train()
    with pytest.raises(RuntimeError, match=r"eval"):
        vb.reparameterize(m)
    for x in _foldable(m):
        with pytest.raises(RuntimeError, match=r"eval"):
            x.reparameterize()
    assert all(not getattr(x, "is_reparameterized", False) for x in _foldable(m)), "a failed fold changed the module"


def _aten_ops(m: torch.nn.Module, inputs) -> list[str]:
    ep = torch.export.export(m, inputs)
    return [str(n.target) for n in ep.graph_module.graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("name", [n for n in BLOCKS if vb.block_info(n).layout == "conv"])
def test_folded_conv_block_is_one_convolution(name):
    m = _folded("block", name)
    inputs = _inputs("block", name)
    ops = _aten_ops(m, inputs)
    convs = [o for o in ops if "conv" in o]
    assert len(convs) == 1, f"{name}: the folded block runs {len(convs)} convolutions: {convs}"
    assert not [o for o in ops if "norm" in o], f"{name}: the folded block still normalizes: {ops}"
    assert not any(isinstance(x, torch.nn.modules.batchnorm._BatchNorm) for x in m.modules())


@pytest.mark.parametrize("kind,name", ENTRIES, ids=IDS)
def test_folded_state_dict_loads_into_deploy_form(kind, name):
    m = _folded(kind, name)
    inputs = _inputs(kind, name)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = _build(kind, name, deploy=True, seed=7).eval()
    assert all(getattr(x, "is_reparameterized", True) for x in _foldable(fresh)), f"{name}: deploy=True is not folded"
    fresh.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(_out(fresh, inputs), _out(m, inputs)))
