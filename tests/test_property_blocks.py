"""Property test over the whole block registry (issue 17): for random sizes (1..64, non-square), batch 0..3 and
hyper-parameters drawn from each argument's kind (``visionblocks.layers.validate``: valid values and values
just outside), a block gives a right-shaped finite output, or a ValueError/TypeError raised by visionblocks that
names the argument -- never an error from inside torch, never a NaN.

Bounded: a few examples per block in the default tier, more with ``-m slow``.
"""
from __future__ import annotations

import math
import os
import traceback
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import visionblocks
from visionblocks import testing
from visionblocks.registry import block_info, list_blocks

_PKG = os.path.dirname(os.path.abspath(visionblocks.__file__))

# values drawn per kind: mostly valid, some just outside (and wrong types)
_BAD_COMMON = [None, "3", 2.5, -1, float("nan")]
KIND_VALUES = {
    "int": [1, 2, 3, 4, 8, 0, -1, 2.0, "4", True],
    "int0": [0, 1, 2, 3, -1, 1.5],
    "odd": [1, 3, 5, 7, 2, 0, -1, 3.0, "3"],
    "size": [1, 2, 3, 5, (3, 5), (1, 2), 0, (0, 3), (3,), 3.0, "3"],
    "odd_size": [1, 3, 5, (3, 5), 2, (2, 3), 0],
    "size0": [0, 1, (0, 1), -1, 1.5],
    "ints": [(1,), (1, 2), (2, 3), (), 2, (0, 1), (1.5,)],
    "odd_ints": [(3,), (3, 5), (1, 3, 5), (2,), (), 3],
    "prob": [0.0, 0.1, 0.5, 0.99, 1.0, 1.5, -0.5, float("nan"), None, "0.1"],
    "pos": [0.25, 1, 2.0, 4.0, 0, -0.5, float("inf"), float("nan"), None, "2"],
    "nonneg": [0.0, 0.02, 1.0, -0.5, float("nan"), None],
    "pos_floats": [(1.0,), (1.0, 2.0), (0.0,), 1.0],
    "unit": [0.0, 0.25, 0.5, 1.0, -0.1, 1.1],
    "real": [0.0, 0.1, -1.0, 1e-4, float("nan"), "1"],
    "padding": [None, 0, 1, 2, (0, 1), -1, 2.5, "same"],
    "bool": [True, False, 1, None],
    "act": ["relu", "gelu", "silu", "identity", None, "nope", 3],
    "norm2d": ["batchnorm", "layernorm", "ln", "layernorm2d", "groupnorm1", "identity", None, "instancenorm",
               "batchnorm1d", "nope"],
    "pooled_norm2d": ["batchnorm", "layernorm", "layernorm2d", "groupnorm1", "instancenorm", "nope"],
    "attn": [None, "se", "eca", "SE", "cbam", "nope", "self_attention", 3],
    "dict": [{}, None, 3],
    "padding_mode": ["zeros", "reflect", "replicate", "circular", "nope"],
}
_SKIP = {"channels", "in_channels", "dim", "in_features", "num_tokens", "seq_len", "size", "num_classes",
         "deploy"}  # input-defining (kept from the example so the input matches) or a different form


def _perturbable(info) -> list[tuple[str, str]]:
    kinds = getattr(info.cls, "__arg_kinds__", {})
    return [(n, k) for n, k in kinds.items() if n not in _SKIP and k in KIND_VALUES]


def _ctor(info, overrides: dict):
    import inspect
    params = [p.name for p in inspect.signature(info.cls.__init__).parameters.values() if p.name != "self"]
    args, kwargs = list(info.example.args), dict(info.example.kwargs)
    for name, value in overrides.items():
        if name in params and params.index(name) < len(args):
            args[params.index(name)] = value
        else:
            kwargs[name] = value
    return tuple(args), kwargs


def _from_visionblocks(e: BaseException) -> bool:
    frames = traceback.extract_tb(e.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(_PKG + os.sep)


def _shape_ok(info, out, inputs, overrides) -> bool:
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if info.layout == "special":
        return True  # special outputs are checked by the contract; here: finite and batch-preserving
    x = inputs[0]
    y = outs[0]
    if y.shape[0] != x.shape[0] or y.ndim != (2 if info.layout == "head" else x.ndim):
        return False
    if set(overrides) & {"stride", "out_channels", "kernel_size", "padding", "dilation", "output_padding"}:
        return True  # geometry changed: rank and batch only
    if info.layout in ("nchw", "nlc") and "stride" not in dict(info.example.kwargs):
        try:
            exp = testing.expected_output_shapes(info, inputs)
        except Exception:
            return True
        return tuple(y.shape) == tuple(exp) or info.layout == "nchw" and y.shape[1] != x.shape[1]
    return True


@st.composite
def _case(draw, info):
    pert = _perturbable(info)
    overrides = {}
    if pert:
        for name, kind in draw(st.lists(st.sampled_from(pert), min_size=0, max_size=2, unique=True)):
            overrides[name] = draw(st.sampled_from(KIND_VALUES[kind]))
    batch = draw(st.integers(0, 3))
    size = (draw(st.integers(1, 64)), draw(st.integers(1, 64)))
    train = draw(st.booleans())
    return overrides, batch, size, train


def _check_case(name, overrides, batch, size, train):
    info = block_info(name)
    args, kwargs = _ctor(info, overrides)
    torch.manual_seed(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = info.cls(*args, **kwargs)
    except (ValueError, TypeError) as e:
        assert _from_visionblocks(e), f"{name}{overrides}: construction error from outside visionblocks: {e!r}"
        named = [n for n in overrides if n in str(e)] or [n for n in info.cls.__arg_kinds__ if n in str(e)]
        assert named, f"{name}{overrides}: the error does not name an argument: {e}"
        return
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"{name}{overrides}: construction raised {type(e).__name__}: {e}") from e
    m.train(train)
    fixed = info.fixed_size
    size_arg = None if fixed else (size if info.layout != "nlc" else size[0] * size[1] // 8 + 1)
    inputs = testing.make_inputs(info, batch=batch, size=size_arg)
    try:
        out = m(*inputs)
    except (ValueError, TypeError) as e:
        assert _from_visionblocks(e), f"{name}{overrides} on {testing.shapes_of(inputs)} (train={train}): " \
                                      f"error from inside torch: {type(e).__name__}: {e}"
        return
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"{name}{overrides} on {testing.shapes_of(inputs)} (train={train}): "
                             f"{type(e).__name__}: {e}") from e
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for t in outs:
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            assert torch.isfinite(t).all(), f"{name}{overrides} on {testing.shapes_of(inputs)}: non-finite output"
    assert _shape_ok(info, out, inputs, overrides), \
        f"{name}{overrides}: output {testing.shapes_of(out)} for input {testing.shapes_of(inputs)}"


def _make_test(max_examples):
    def test(name):
        info = block_info(name)

        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(_case(info))
        def prop(case):
            _check_case(name, *case)

        prop()
    return test


test_block_property = pytest.mark.parametrize("name", list_blocks())(_make_test(3))
test_block_property_slow = pytest.mark.slow(pytest.mark.parametrize("name", list_blocks())(_make_test(40)))


def test_kinds_cover_every_argument_kind():
    from visionblocks.layers.validate import KINDS
    assert set(KIND_VALUES) <= set(KINDS)
    assert not math.isnan(0.0)
