"""The block and model contract, as reusable checks.

Each ``check_*`` function builds an entry from the registry and raises ``AssertionError`` with a clear
message when the entry breaks one rule of the plug-and-play contract.  The test-suite parametrizes them
over ``list_blocks()`` and ``list_models()``; users can run them on their own registered blocks and models::

    from visionblocks import testing
    testing.check_block("my_gate")          # every rule (BLOCK_CHECKS), or call single checks
    testing.check_model("my_net")           # every rule (MODEL_CHECKS), the slow compile/export included

Only torch is needed, except :func:`check_onnx` (``onnx``, ``onnxscript`` and ``onnxruntime``).  Counting
parameters and MACs, timing and tables live in :mod:`visionblocks.measure`.
"""
from __future__ import annotations

import copy
import io
import math
import os
import traceback
from typing import Any, Callable

import torch
import torch.nn as nn

from .measure import count_macs, count_params, flatten_outputs  # noqa: F401  (count_params: former home)
from .registry import BlockInfo, ModelInfo, block_info, model_info

__all__ = [
    "make_inputs", "expected_output_shapes", "shapes_of", "build", "randomize_params", "randomize_bn_stats",
    "check_forward", "check_other_sizes", "check_backward", "check_dtypes", "check_channels_last",
    "check_compile", "check_export", "check_bad_input", "check_state_dict", "check_onnx", "check_onnx_reason",
    "check_block", "BLOCK_CHECKS",
    "model_test_size", "check_model_forward_backward", "check_model_inputs", "check_model_paper_counts",
    "check_model_compile_export", "check_model", "MODEL_CHECKS",
]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


# --------------------------------------------------------------------------------------------- inputs
def _info(entry: str | BlockInfo) -> BlockInfo:
    return block_info(entry) if isinstance(entry, str) else entry


def make_inputs(info: BlockInfo, batch: int | None = None, size: Any = None, bad: str | None = None,
                dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs for ``info``'s example; ``size`` is (H, W) for image layouts, N for ``nlc``;
    ``bad`` = ``"channels"`` or ``"rank"`` makes a deliberately wrong input."""
    g = torch.Generator().manual_seed(seed)
    ex = info.example
    if info.layout == "special":
        inputs = ex.make_inputs(batch=batch, size=size, bad=bad, generator=g)
        return tuple(t.to(dtype) if t.is_floating_point() else t for t in inputs)
    shape = list(ex.input_shape)
    if batch is not None:
        shape[0] = batch
    if size is not None:
        if info.layout == "nlc":
            shape[1] = int(size)
        else:
            shape[-2:] = list(size)
    if bad == "channels":
        shape[1 if info.layout != "nlc" else 2] += 1
    elif bad == "rank":
        shape = shape[1:]
    elif bad is not None:
        raise ValueError(f"bad must be None, 'channels' or 'rank', got {bad!r}")
    return (torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype),)


def _ctor_arg(info: BlockInfo, name: str, position: int, default: Any) -> Any:
    ex = info.example
    if name in ex.kwargs:
        return ex.kwargs[name]
    if len(ex.args) > position:
        return ex.args[position]
    return default


def expected_output_shapes(info: BlockInfo, inputs: tuple[torch.Tensor, ...]) -> Any:
    """The shape (or tuple of shapes) the layout promises for ``inputs``."""
    ex = info.example
    if ex.output_shapes is not None:
        return ex.output_shapes(inputs)
    x = inputs[0]
    if info.layout in ("nchw", "nlc"):
        return tuple(x.shape)
    if info.layout == "conv":
        out_ch = _ctor_arg(info, "out_channels", 1, None)
        stride = _ctor_arg(info, "stride", 3, 1)
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        return (x.shape[0], out_ch, math.ceil(x.shape[2] / sh), math.ceil(x.shape[3] / sw))
    if info.layout == "head":
        return (x.shape[0], _ctor_arg(info, "num_classes", 1, None))
    raise AssertionError(f"{info.name}: a 'special' block must give example.output_shapes")


def shapes_of(out: Any) -> Any:
    """The shape of a tensor, or the nested tuple of shapes of a tuple of them."""
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    return tuple(shapes_of(o) for o in out)


def build(info: BlockInfo, seed: int = 0) -> nn.Module:
    """The block at its example configuration, initialised from ``seed``."""
    torch.manual_seed(seed)
    return info.build_example()


def randomize_params(module: nn.Module, scale: float = 0.3, seed: int = 0, add: bool = False) -> nn.Module:
    """Set every parameter to ``scale`` * N(0, 1) (zero-initialised gates included), or with ``add=True`` add
    that noise to it; deterministic in ``seed`` (for exactness tests against a reference formula)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype) * scale
            if add:
                p.add_(noise)
            else:
                p.copy_(noise)
    return module


def randomize_bn_stats(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random running statistics and affine parameters (for exactness tests)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.5)
    return module


def _close(a: list[torch.Tensor], b: list[torch.Tensor], what: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    assert len(a) == len(b), f"{what}: {len(a)} outputs vs {len(b)}"
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.shape == y.shape, f"{what}: output {i} shape {tuple(x.shape)} vs {tuple(y.shape)}"
        x, y = x.detach().double(), y.detach().double()
        scale = max(1.0, y.abs().max().item())
        err = (x - y).abs().max().item()
        assert err <= atol * scale + rtol * scale, f"{what}: output {i} differs by {err:.3g} (scale {scale:.3g})"


def _call(m: Callable[..., Any], inputs: tuple, what: str) -> Any:
    """``m(*inputs)``; a crash, or an output that is not tensors, becomes an AssertionError saying what was
    being checked."""
    try:
        out = m(*inputs)
        flatten_outputs(out)
        return out
    except AssertionError:
        raise
    except Exception as e:
        raise AssertionError(f"{what}: crashed on input {shapes_of(inputs)}: {type(e).__name__}: {str(e)[:300]}") from e


def _run(m: nn.Module, inputs: tuple, what: str = "forward") -> list[torch.Tensor]:
    return flatten_outputs(_call(m, inputs, what))


def _expect_rejection(m: nn.Module, inputs: tuple, errors: tuple[type[Exception], ...], what: str) -> Exception:
    """The exception of type ``errors`` that ``m(*inputs)`` raises; an AssertionError when it raises another
    type or accepts the input.  ``what`` describes the input ("<entry>: input ... with a wrong ...")."""
    expected = "/".join(e.__name__ for e in errors)
    try:
        with torch.no_grad():
            m(*inputs)
    except errors as e:
        return e
    except Exception as e:
        raise AssertionError(f"{what} raised {type(e).__name__} (from torch?), not {expected}: {str(e)[:200]}") from e
    raise AssertionError(f"{what} was accepted (expected a {expected})")


# --------------------------------------------------------------------------------------------- checks
def check_forward(entry: str | BlockInfo) -> None:
    """Forward at the example gives the layout's shape with finite values (train and eval mode)."""
    info = _info(entry)
    m = build(info)
    inputs = make_inputs(info)
    expected = expected_output_shapes(info, inputs)
    for mode in (True, False):
        m.train(mode)
        out = _call(m, inputs, f"{info.name}: forward")
        got = shapes_of(out)
        assert got == expected, f"{info.name}: output shape {got}, the {info.layout!r} layout promises {expected}"
        for t in flatten_outputs(out):
            assert torch.isfinite(t).all(), f"{info.name}: non-finite output ({'train' if mode else 'eval'} mode)"


def _other_sizes(info: BlockInfo) -> list:
    if info.layout == "nlc":
        n = info.example.input_shape[1]
        return [n + 5, max(1, n // 2 + 1)]
    return [(17, 23), (9, 32)]


def check_other_sizes(entry: str | BlockInfo) -> None:
    """Blocks not tied to a size give the right shape at other sizes (odd ones included) and at batch 1 in
    eval mode; ``fixed_size`` blocks reject another size with a ``ValueError``."""
    info = _info(entry)
    m = build(info)
    for size in _other_sizes(info):
        inputs = make_inputs(info, size=size)
        if info.fixed_size:
            e = _expect_rejection(m, inputs, (ValueError,), f"{info.name} is fixed_size but input {shapes_of(inputs)}")
            assert "size" in str(e).lower() or "token" in str(e).lower(), \
                f"{info.name}: the ValueError for a wrong size should say so: {e}"
            continue
        for mode in (True, False):
            m.train(mode)
            out = _call(m, inputs, f"{info.name}: other input size (decided at call time)")
            assert shapes_of(out) == expected_output_shapes(info, inputs), \
                f"{info.name}: at input {shapes_of(inputs)} got {shapes_of(out)}, expected {expected_output_shapes(info, inputs)}"
            assert all(torch.isfinite(t).all() for t in flatten_outputs(out)), f"{info.name}: non-finite output at {size}"
    m.eval()
    inputs = make_inputs(info, batch=1)
    with torch.no_grad():
        single = _call(m, inputs, f"{info.name}: batch 1 in eval mode")
        full = _run(m, make_inputs(info, batch=2))
    exp = expected_output_shapes(info, inputs)
    assert shapes_of(single) == exp, f"{info.name}: batch 1 gives {shapes_of(single)}, expected {exp}"
    # batch independence in eval mode: the first sample's output does not depend on the others
    first = _run(m, tuple(t[:1] for t in make_inputs(info, batch=2)))
    _close(first, [t[:1] for t in full], f"{info.name}: eval output of sample 0 depends on the rest of the batch")


def check_backward(entry: str | BlockInfo) -> None:
    """Backward gives every parameter a finite gradient."""
    info = _info(entry)
    m = build(info).train()
    inputs = tuple(t.requires_grad_(True) if t.is_floating_point() else t for t in make_inputs(info))
    outs = _run(m, inputs, f"{info.name}: forward for backward")
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
    try:
        loss.backward()
    except Exception as e:
        raise AssertionError(f"{info.name}: backward failed: {type(e).__name__}: {str(e)[:300]}") from e
    for name, p in m.named_parameters():
        assert p.grad is not None, f"{info.name}: parameter {name!r} got no gradient (unused in forward?)"
        assert torch.isfinite(p.grad).all(), f"{info.name}: parameter {name!r} has a non-finite gradient"
    for i, t in enumerate(inputs):
        if t.is_floating_point():
            assert t.grad is not None and torch.isfinite(t.grad).all(), f"{info.name}: input {i} gets no finite gradient"


def check_dtypes(entry: str | BlockInfo) -> None:
    """float64 agrees with float32; bfloat16 runs, keeps its dtype and stays close."""
    info = _info(entry)
    m = build(info).eval()
    inputs = make_inputs(info)
    with torch.no_grad():
        ref = _run(m, inputs)
        m64 = copy.deepcopy(m).double()
        out64 = _run(m64, make_inputs(info, dtype=torch.float64), f"{info.name}: float64")
        for t in out64:
            assert t.dtype == torch.float64 or not t.is_floating_point(), f"{info.name}: float64 input gave {t.dtype}"
        _close(out64, ref, f"{info.name}: float64 vs float32", rtol=1e-3, atol=1e-4)
        mbf = copy.deepcopy(m).to(torch.bfloat16)
        outbf = _run(mbf, make_inputs(info, dtype=torch.bfloat16), f"{info.name}: bfloat16")
        for t, r in zip(outbf, ref):
            assert t.dtype == torch.bfloat16 or not t.is_floating_point(), f"{info.name}: bfloat16 input gave {t.dtype}"
            assert torch.isfinite(t).all(), f"{info.name}: non-finite bfloat16 output"
            rel = (t.double() - r.double()).norm() / r.double().norm().clamp_min(1e-6)
            assert rel < 0.1, f"{info.name}: bfloat16 output is {rel:.3f} (relative norm) away from float32"


def check_channels_last(entry: str | BlockInfo) -> None:
    """A channels_last input gives the same result as a contiguous one."""
    info = _info(entry)
    m = build(info).eval()
    inputs = make_inputs(info)
    if not any(t.ndim == 4 for t in inputs):
        return  # no image input: nothing to reorder
    cl = tuple(t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t for t in inputs)
    with torch.no_grad():
        _close(_run(m, cl, f"{info.name}: channels_last"), _run(m, inputs), f"{info.name}: channels_last vs contiguous",
               rtol=1e-5, atol=1e-5)


def check_compile(entry: str | BlockInfo) -> None:
    """``torch.compile(fullgraph=True)`` traces with no graph break and gives the eager result."""
    import torch._dynamo
    info = _info(entry)
    m = build(info).eval()
    inputs = make_inputs(info)
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True, backend="eager")
    with torch.no_grad():
        try:
            got = _run(compiled, inputs)
        except Exception as e:  # a graph break under fullgraph=True raises
            raise AssertionError(f"{info.name}: torch.compile(fullgraph=True) failed: {type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''}") from e
        _close(got, _run(m, inputs), f"{info.name}: compiled vs eager")


def check_export(entry: str | BlockInfo) -> None:
    """``torch.export.export`` works and matches eager."""
    info = _info(entry)
    m = build(info).eval()
    inputs = make_inputs(info)
    try:
        ep = torch.export.export(m, inputs)
    except Exception as e:
        raise AssertionError(f"{info.name}: torch.export failed: {type(e).__name__}: {str(e)[:300]}") from e
    with torch.no_grad():
        _close(_run(ep.module(), inputs), _run(m, inputs), f"{info.name}: exported vs eager")


def _raised_in_torch(tb) -> bool:
    frames = traceback.extract_tb(tb)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(_TORCH_DIR + os.sep) \
        and not os.path.abspath(frames[-1].filename).startswith(_PKG_DIR)


def check_bad_input(entry: str | BlockInfo) -> None:
    """A wrong channel count and a wrong rank raise ValueError/TypeError naming expected and received shape."""
    info = _info(entry)
    m = build(info).eval()
    for bad in ("channels", "rank"):
        inputs = make_inputs(info, bad=bad)
        e = _expect_rejection(m, inputs, (ValueError, TypeError), f"{info.name}: input {shapes_of(inputs)} with "
                                                                  f"a wrong {bad}")
        assert not _raised_in_torch(e.__traceback__), \
            f"{info.name}: the error for a wrong {bad} comes from inside torch, not from the block: {e}"
        received = [str(tuple(t.shape)) for t in inputs]
        assert any(r in str(e) for r in received), \
            f"{info.name}: the error for a wrong {bad} should name the received shape {received}: {str(e)!r}"


def check_state_dict(entry: str | BlockInfo) -> None:
    """A state_dict saved and loaded with ``weights_only=True`` into a fresh instance reproduces the output."""
    info = _info(entry)
    m = build(info, seed=0).eval()
    randomize_params(m, scale=0.01, seed=2, add=True)  # nothing is left at a constant initialisation
    randomize_bn_stats(m, seed=3)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)
    fresh = build(info, seed=123).eval()
    fresh.load_state_dict(sd, strict=True)
    inputs = make_inputs(info)
    with torch.no_grad():
        a, b = _run(m, inputs), _run(fresh, inputs)
    for x, y in zip(a, b):
        assert torch.equal(x, y), f"{info.name}: output after a state_dict round trip differs " \
                                  f"(state kept outside parameters/buffers?)"


def check_onnx(entry: str | BlockInfo) -> None:
    """``torch.onnx.export(dynamo=True)`` gives a model onnxruntime runs with the eager result (atol 1e-4);
    a block registered with ``onnx_unsupported`` must state why and must really fail to export."""
    import logging
    import warnings
    import onnxruntime as ort
    info = _info(entry)
    m = build(info).eval()
    inputs = make_inputs(info)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as devnull:
            warnings.simplefilter("ignore")
            import contextlib
            with contextlib.redirect_stdout(devnull):
                prog = torch.onnx.export(m, inputs, dynamo=True, verbose=False)
        data = prog.model_proto.SerializeToString()
    except Exception as e:
        if info.onnx_unsupported:
            return
        raise AssertionError(f"{info.name}: torch.onnx.export failed: {type(e).__name__}: {str(e)[:300]}") from e
    assert not info.onnx_unsupported, (f"{info.name} says it cannot be exported to ONNX ({info.onnx_unsupported}) "
                                       "but it exports: remove the exception")
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
    got = [torch.from_numpy(o) for o in sess.run(None, feeds)]
    with torch.no_grad():
        ref = _run(m, inputs)
    assert len(got) == len(ref), f"{info.name}: ONNX model gives {len(got)} outputs, eager {len(ref)}"
    for i, (g, r) in enumerate(zip(got, ref)):
        err = (g.double() - r.double()).abs().max().item()
        assert err <= 1e-4 * max(1.0, r.abs().max().item()), f"{info.name}: ONNX output {i} differs by {err:.3g}"


def check_onnx_reason(entry: str | BlockInfo) -> None:
    """A block registered with ``onnx_unsupported`` explains why in a sentence."""
    info = _info(entry)
    if info.onnx_unsupported is not None:
        assert len(info.onnx_unsupported.strip()) >= 20, f"{info.name}: onnx_unsupported must explain why"


BLOCK_CHECKS: dict[str, Callable[[Any], None]] = {
    "forward": check_forward, "other_sizes": check_other_sizes, "backward": check_backward,
    "dtypes": check_dtypes, "channels_last": check_channels_last, "compile": check_compile,
    "export": check_export, "bad_input": check_bad_input, "state_dict": check_state_dict, "onnx": check_onnx,
}


def check_block(entry: str | BlockInfo, skip: tuple[str, ...] = ()) -> None:
    """Run every contract check (except those in ``skip``) on one block."""
    for name, fn in BLOCK_CHECKS.items():
        if name not in skip:
            fn(entry)


# --------------------------------------------------------------------------------------------- models
def _model_info(entry: str | ModelInfo) -> ModelInfo:
    return model_info(entry) if isinstance(entry, str) else entry


def model_test_size(info: ModelInfo) -> tuple[int, int]:
    """The (H, W) the checks use: ``test_input_size`` (small, fast) or the model's input size."""
    return info.test_input_size or tuple(info.input_size[1:])


def _build_model(info: ModelInfo, seed: int = 0, **kwargs: Any) -> nn.Module:
    torch.manual_seed(seed)
    return info.fn(**{"num_classes": 1000, "in_chans": 3, **kwargs})  # as registry.create_model


def _model_input(info: ModelInfo, batch: int = 2, size: tuple[int, int] | None = None,
                 in_chans: int | None = None) -> torch.Tensor:
    return torch.randn(batch, in_chans or info.input_size[0], *(size or model_test_size(info)))


def check_model_forward_backward(entry: str | ModelInfo) -> None:
    """``forward_head(forward_features(x))`` gives finite (B, num_classes) logits with ``num_classes`` and
    ``in_chans`` honoured; every parameter gets a finite gradient; ``forward`` is that composition."""
    info = _model_info(entry)
    m = _build_model(info, num_classes=10, in_chans=1).train()
    x = _model_input(info, in_chans=1)
    feats = _call(m.forward_features, (x,), f"{info.name}: forward_features with in_chans=1")
    out = _call(m.forward_head, (feats,), f"{info.name}: forward_head with num_classes=10")
    assert out.shape == (2, 10), f"{info.name}: logits of shape {tuple(out.shape)} for num_classes=10, batch 2"
    assert torch.isfinite(out).all(), f"{info.name}: non-finite logits"
    out.square().mean().backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{info.name}: {n} has no finite gradient"
    m.eval()
    with torch.no_grad():
        assert torch.allclose(m(x), m.forward_head(m.forward_features(x)), atol=1e-5), \
            f"{info.name}: forward(x) is not forward_head(forward_features(x))"


def check_model_inputs(entry: str | ModelInfo) -> None:
    """A model that declares a ``test_input_size`` also runs 32 pixels larger (one that does not, at its
    input size); a wrong channel count raises ValueError/TypeError naming the received shape."""
    info = _model_info(entry)
    m = _build_model(info, num_classes=7).eval()
    h, w = model_test_size(info)
    if info.test_input_size is not None:  # the model works at sizes other than its default
        h, w = h + 32, w + 32
    with torch.no_grad():
        out = _call(m, (torch.randn(1, 3, h, w),), f"{info.name}: forward at {h}x{w}")
    assert out.shape == (1, 7), f"{info.name}: at {h}x{w} the logits have shape {tuple(out.shape)}, not (1, 7)"
    e = _expect_rejection(m, (torch.randn(1, 4, h, w),), (ValueError, TypeError),
                          f"{info.name}: input (1, 4, {h}, {w}) with 4 channels")
    assert "(1, 4, " in str(e), f"{info.name}: the error for 4 channels should name the received shape: {e}"


def check_model_paper_counts(entry: str | ModelInfo) -> None:
    """Parameters within 1% of the paper's count; MACs within ``macs_rel_tol`` (1%) or the paper's rounding."""
    info = _model_info(entry)
    params, macs = count_macs(info)
    if info.paper_params is not None:
        assert abs(params / 1e6 - info.paper_params) <= 0.01 * info.paper_params, \
            f"{info.name}: {params / 1e6:.3f} M params, paper {info.paper_params} M"
    if info.paper_macs is not None:
        decimals = len(repr(float(info.paper_macs)).split(".")[1])
        tol = max(info.macs_rel_tol * info.paper_macs, 0.5 * 10 ** -decimals)
        assert abs(macs / 1e9 - info.paper_macs) <= tol, f"{info.name}: {macs / 1e9:.3f} GMACs, paper {info.paper_macs}"


def check_model_compile_export(entry: str | ModelInfo) -> None:
    """``torch.compile(fullgraph=True)`` and ``torch.export`` give the eager logits (atol/rtol 1e-4).  Slow."""
    import torch._dynamo
    info = _model_info(entry)
    m = _build_model(info, num_classes=10).eval()
    x = _model_input(info, batch=1)
    with torch.no_grad():
        ref = m(x)
        torch._dynamo.reset()
        compiled = torch.compile(m, fullgraph=True, backend="eager")
        got = _call(compiled, (x,), f"{info.name}: torch.compile(fullgraph=True)")
        assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4), f"{info.name}: compiled vs eager logits differ"
        try:
            ep = torch.export.export(m, (x,))
        except Exception as e:
            raise AssertionError(f"{info.name}: torch.export failed: {type(e).__name__}: {str(e)[:300]}") from e
        assert torch.allclose(ep.module()(x), ref, atol=1e-4, rtol=1e-4), \
            f"{info.name}: exported vs eager logits differ"


MODEL_CHECKS: dict[str, Callable[[Any], None]] = {
    "forward_backward": check_model_forward_backward, "inputs": check_model_inputs,
    "paper_counts": check_model_paper_counts, "compile_export": check_model_compile_export,
}


def check_model(entry: str | ModelInfo, skip: tuple[str, ...] = ()) -> None:
    """Run every model contract check (except those in ``skip``, e.g. the slow ``"compile_export"``)."""
    for name, fn in MODEL_CHECKS.items():
        if name not in skip:
            fn(entry)
