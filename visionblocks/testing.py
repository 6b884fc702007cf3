"""The block and model contract, as reusable checks.

Each ``check_*`` function builds an entry from the registry and raises ``AssertionError`` with a clear
message when the entry breaks one rule of the plug-and-play contract.  The test-suite parametrizes them
over ``list_blocks()`` and ``list_models()``; users can run them on their own registered blocks and models::

    from visionblocks import testing
    testing.check_block("my_gate")          # every rule (BLOCK_CHECKS), or call single checks
    testing.check_model("my_net")           # every rule (MODEL_CHECKS), the slow compile/export included

The model checks include the backbone API (``BACKBONE_CHECKS``): ``feature_info`` true to a real forward,
``features_only``/``out_indices`` and pruning, ``output_stride``, the classifier API, ``pretrained_cfg``,
gradient checkpointing, ``drop_path_rate`` and ``in_chans``; a model gets them by deriving from
:class:`visionblocks.ModelBase` and declaring its features (see :mod:`visionblocks.features`).

Only torch is needed, except :func:`check_onnx` (``onnx``, ``onnxscript`` and ``onnxruntime``).  Counting
parameters and MACs, timing and tables live in :mod:`visionblocks.measure`.
"""
from __future__ import annotations

import contextlib
import copy
import io
import itertools
import math
import os
import traceback
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

from .layers import to_names
from .measure import count_macs, count_params, flatten_outputs  # noqa: F401  (count_params: former home)
from .registry import BlockInfo, ModelInfo, block_info, model_info

__all__ = [
    "make_inputs", "expected_output_shapes", "shapes_of", "build", "randomize_params", "randomize_bn_stats",
    "check_forward", "check_other_sizes", "check_backward", "check_dtypes", "check_channels_last",
    "check_compile", "check_compile_dynamic", "check_compile_train", "check_export", "check_export_dynamic", "check_bad_input", "check_state_dict", "check_onnx", "check_onnx_reason",
    "check_block", "BLOCK_CHECKS",
    "model_test_size", "check_model_forward_backward", "check_model_inputs", "check_model_paper_counts",
    "check_model_compile_export", "check_model", "MODEL_CHECKS",
    "check_model_feature_info", "check_model_features_only", "check_model_output_stride", "check_model_classifier",
    "check_model_pretrained_cfg", "check_model_grad_checkpointing", "check_model_drop_path_in_chans",
    "check_model_features_compile_export", "check_model_prune", "BACKBONE_CHECKS", "peak_memory",
]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


# --------------------------------------------------------------------------------------------- memory
def peak_memory(fn: Callable[[], Any]) -> int:
    """Bytes of the tensors that ``fn`` creates (forward or backward ops alike) alive at once at their peak, on
    any device: every op's output storage that is none of the op's inputs' is counted from its creation until
    Python frees it (a weak reference to the storage).  Deterministic, unlike the process's resident memory: what
    memory tests assert on."""
    import weakref
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class _Live(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live, self.now, self.peak = {}, 0, 0

        def _free(self, key: int) -> None:
            self.now -= self.live.pop(key, 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            given = {a.untyped_storage().data_ptr() for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)}
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    storage = t.untyped_storage()
                    key = id(storage)
                    # (a view or an in-place result of an input is no new memory)
                    if key not in self.live and storage.nbytes() and storage.data_ptr() not in given:
                        self.live[key] = storage.nbytes()
                        self.now += storage.nbytes()
                        self.peak = max(self.peak, self.now)
                        weakref.finalize(storage, self._free, key)
            return out

    with _Live() as live:
        result = fn()
        del result
    return live.peak


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
    """Forward at the example gives the layout's shape with finite values (train and eval mode), and on an
    empty batch (eval) the empty output of that shape."""
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
    empty = tuple(t[:0] for t in inputs)   # an empty batch (a detector's stage with no boxes), as torch's layers allow
    with torch.no_grad():
        got = shapes_of(_call(m, empty, f"{info.name}: forward on an empty batch"))
    assert got == expected_output_shapes(info, empty), f"{info.name}: on an empty batch the output shape is {got}"


def _other_sizes(info: BlockInfo) -> list:
    if info.layout == "nlc":
        n = info.example.input_shape[1]
        return [n + 5, max(1, n // 2 + 1)]
    return [(17, 23), (9, 32)]


def check_other_sizes(entry: str | BlockInfo) -> None:
    """Blocks not tied to a size give the right shape at other sizes (odd ones included; an NCHW input gives
    NCHW-contiguous outputs there too) and at batch 1 in eval mode; ``fixed_size`` blocks reject another size with
    a ``ValueError``."""
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
            if any(t.ndim == 4 for t in inputs):  # (a crop or pad at an odd size must not leave a strided view)
                _check_layout(flatten_outputs(out), False, f"{info.name}: NCHW input at {size}")
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


def _projected_loss(outs: list[torch.Tensor]) -> torch.Tensor:
    """The outputs projected on fixed random directions (seed 1): a loss whose gradient reaches every element."""
    g = torch.Generator().manual_seed(1)
    return sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)


def check_backward(entry: str | BlockInfo) -> None:
    """Backward gives every parameter a finite gradient."""
    info = _info(entry)
    m = build(info).train()
    inputs = tuple(t.requires_grad_(True) if t.is_floating_point() else t for t in make_inputs(info))
    loss = _projected_loss(_run(m, inputs, f"{info.name}: forward for backward"))
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


def _to_channels_last(inputs: tuple) -> tuple:
    return tuple(t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t for t in inputs)


def _check_layout(outs: list[torch.Tensor], channels_last: bool, what: str) -> None:
    """Every 4-d output is stored as the input was: channels-last for a channels-last input, NCHW-contiguous for
    an NCHW one (PyTorch's own layers' rule; a (B, C, 1, 1) or C = 1 output is both)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for i, t in enumerate(outs):
        if t.ndim == 4 and not t.is_contiguous(memory_format=fmt):
            raise AssertionError(
                f"{what}: output {i} {tuple(t.shape)} is stored with strides {t.stride()}, not "
                f"{'channels-last' if channels_last else 'NCHW-contiguous'} as its input: a block's output keeps "
                f"its input's memory format (layers.layout_like)")


def check_channels_last(entry: str | BlockInfo) -> None:
    """A channels_last input gives the same result as a contiguous one, and every 4-d output keeps the input's
    memory format: NCHW in, NCHW-contiguous out; channels-last in, channels-last out -- with the block as built
    and with its convolution weights channels-last too (``to_channels_last``, what ``fuse`` does on the CPU), in
    eval and with autograd recording.  A block that hands the next layer another layout makes a
    network switch layouts mid-way (a reorder before the next convolution) and breaks a user's ``.view``."""
    from .inference import to_channels_last
    info = _info(entry)
    m = build(info).eval()
    inputs = make_inputs(info)
    if not any(t.ndim == 4 for t in inputs):
        return  # no image input: nothing to reorder
    cl = _to_channels_last(inputs)
    with torch.no_grad():
        ref = _run(m, inputs)
        _check_layout(ref, False, f"{info.name}: NCHW input (eval)")
        got = _run(m, cl, f"{info.name}: channels_last")
        _close(got, ref, f"{info.name}: channels_last vs contiguous", rtol=1e-5, atol=1e-5)
        _check_layout(got, True, f"{info.name}: channels-last input (eval)")
        m_cl = to_channels_last(copy.deepcopy(m))
        _check_layout(_run(m_cl, cl), True, f"{info.name}: channels-last input and weights (eval)")
    m.train()
    for name, inp in (("NCHW", inputs), ("channels-last", cl)):
        grad_inp = tuple(t.detach().requires_grad_() if t.is_floating_point() else t for t in inp)
        _check_layout(_run(m, grad_inp), name != "NCHW", f"{info.name}: {name} input (training, autograd)")


def check_compile(entry: str | BlockInfo) -> None:
    """``torch.compile(fullgraph=True)`` traces with no graph break and gives the eager result, for the example
    input and, where it has (B, C, H, W) inputs, for the same inputs stored channels-last (what a block of a network
    fused on the CPU receives: layout-aware blocks take other code paths there)."""
    import torch._dynamo
    info = _info(entry)
    m = build(info).eval()
    inputs = make_inputs(info)
    variants = [("", inputs)]
    if any(t.ndim == 4 for t in inputs):
        variants.append((" (channels-last input)", _to_channels_last(inputs)))
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True, backend="eager")
    with torch.no_grad():
        for what, inp in variants:
            try:
                got = _run(compiled, inp)
            except Exception as e:  # a graph break under fullgraph=True raises
                raise AssertionError(f"{info.name}: torch.compile(fullgraph=True){what} failed: {type(e).__name__}: "
                                     f"{str(e).splitlines()[0] if str(e) else ''}") from e
            _close(got, _run(m, inp), f"{info.name}: compiled vs eager{what}")


def _train_step(m: nn.Module, inputs: tuple, what: str) -> list[torch.Tensor]:
    """Outputs, input gradients, parameter gradients and buffers after one forward + backward (fixed output
    gradient; the RNG seeded, for dropout)."""
    inputs = tuple(t.detach().requires_grad_() if t.is_floating_point() else t for t in inputs)
    torch.manual_seed(3)
    outs = _run(m, inputs, what)
    _projected_loss(outs).backward()
    return ([o.detach() for o in outs] + [t.grad for t in inputs if t.is_floating_point()]
            + [p.grad for p in m.parameters()] + [b for b in m.buffers() if b.is_floating_point()])


def check_compile_train(entry: str | BlockInfo) -> None:
    """A compiled training step (``torch.compile(fullgraph=True, backend="aot_eager")``: dynamo and AOTAutograd's
    traced backward) gives eager's outputs, input and parameter gradients and buffers (float64), for the example
    input and, where it has (B, C, H, W) inputs, stored channels-last (the custom autograd Functions' paths)."""
    import torch._dynamo
    info = _info(entry)
    inputs = make_inputs(info, dtype=torch.float64)
    variants = [("", inputs)] + ([(" (channels-last input)", _to_channels_last(inputs))]
                                 if any(t.ndim == 4 for t in inputs) else [])
    for what, inp in variants:
        torch.manual_seed(0)
        eager = build(info).double().train()
        compiled_m = copy.deepcopy(eager)
        torch._dynamo.reset()
        compiled = torch.compile(compiled_m, fullgraph=True, backend="aot_eager")
        try:
            got = _train_step(compiled, inp, f"{info.name}: compiled training step{what}")
        except Exception as e:  # a graph break under fullgraph=True raises
            raise AssertionError(f"{info.name}: torch.compile(fullgraph=True) training step{what} failed: "
                                 f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
        ref = _train_step(eager, inp, f"{info.name}: training step{what}")
        _close(got, ref, f"{info.name}: compiled vs eager training step (outputs, gradients, buffers){what}",
               rtol=1e-7, atol=1e-9)


def check_compile_dynamic(entry: str | BlockInfo) -> None:
    """``torch.compile(dynamic=True, fullgraph=True)`` works at the example's and two other batches and sizes and
    matches eager (a block that branches on a size may recompile; nothing in it may stop the trace)."""
    info = _info(entry)
    m = build(info).eval()
    inputs, others = _dynamic_cases(info)
    torch._dynamo.reset()
    compiled = torch.compile(m, dynamic=True, fullgraph=True, backend="eager")
    with torch.no_grad():
        for inp in (inputs, *others):
            try:
                got = _run(compiled, inp)
            except Exception as e:  # a graph break under fullgraph=True raises
                raise AssertionError(f"{info.name}: torch.compile(dynamic=True, fullgraph=True) failed at "
                                     f"{shapes_of(inp)}: {type(e).__name__}: "
                                     f"{str(e).splitlines()[0] if str(e) else ''}") from e
            _close(got, _run(m, inp), f"{info.name}: compiled (dynamic=True) vs eager at {shapes_of(inp)}")


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


def _dynamic_cases(info: BlockInfo) -> tuple[tuple, list[tuple]]:
    """The example's inputs and inputs at two other batches and sizes (batch only for ``fixed_size`` blocks)."""
    sizes = [None, None] if info.fixed_size else _other_sizes(info)
    return make_inputs(info), [make_inputs(info, batch=b, size=s, seed=i + 1)
                               for i, (b, s) in enumerate(zip((3, 1), sizes))]


def check_export_dynamic(entry: str | BlockInfo) -> None:
    """``torch.export.export`` with every input dimension that varies between calls (batch, H, W; the token
    count of ``nlc`` blocks; only the batch of ``fixed_size`` blocks) marked ``Dim.AUTO`` keeps those sizes
    symbolic, and the exported program run at two other batches and sizes gives the eager result (atol/rtol
    1e-4).  A block registered with ``dynamic_export_unsupported`` must state why and must really fail to
    export, or specialise (a size fixed in the program, or a guard that refuses another size)."""
    info = _info(entry)
    m = build(info).eval()
    inputs, others = _dynamic_cases(info)
    _check_dynamic_program(info.name, m, inputs, others, info.dynamic_export_unsupported)


def _dynamic_spec(inputs: tuple, others: list[tuple]) -> tuple[list[list[int]], tuple]:
    """The dimensions of each input that differ in some of ``others``, and the ``dynamic_shapes`` marking them
    ``Dim.AUTO``."""
    from torch.export import Dim
    dynamic = [sorted({d for o in others for d in range(t.ndim) if o[i].shape[d] != t.shape[d]})
               for i, t in enumerate(inputs)]
    return dynamic, tuple({d: Dim.AUTO for d in dims} or None for dims in dynamic)


def _check_dynamic_program(name: str, m: nn.Module, inputs: tuple, others: list[tuple], reason: str | None,
                           tol: float = 1e-4) -> None:
    """Export ``m`` at ``inputs`` with every dimension that differs in ``others`` marked ``Dim.AUTO``; the program
    must keep them symbolic and give the eager result at each of ``others`` -- or, where ``reason`` says it
    cannot, fail to export, fix a size, or refuse one of ``others``."""
    import warnings
    dynamic, spec = _dynamic_spec(inputs, others)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = torch.export.export(m, inputs, dynamic_shapes=spec)
    except Exception as e:
        if reason:
            return
        raise AssertionError(f"{name}: torch.export with dynamic {_dims_text(dynamic)} failed: "
                             f"{type(e).__name__}: {str(e)[:300]}") from e
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    for i, node in enumerate(ep.graph_signature.user_inputs[:len(inputs)]):
        shape = nodes[node].meta["val"].shape
        fixed = [d for d in dynamic[i] if isinstance(shape[d], int)]
        if fixed:
            if reason:
                return
            raise AssertionError(f"{name}: torch.export specialised input {i} dimension(s) {fixed} to "
                                 f"{[shape[d] for d in fixed]} (exported shape {tuple(shape)})")
    program = ep.module()
    for other in others:
        try:
            with torch.no_grad():
                got = flatten_outputs(program(*other))
        except Exception as e:  # a guard of the program (torch raises AssertionError) or a crash
            if reason:
                return
            raise AssertionError(f"{name}: the program exported with dynamic {_dims_text(dynamic)} refuses "
                                 f"input {shapes_of(other)} (specialised to the example's "
                                 f"{shapes_of(inputs)}?): {type(e).__name__}: {str(e)[:300]}") from e
        with torch.no_grad():
            _close(got, _run(m, other), f"{name}: dynamically exported vs eager at {shapes_of(other)}", tol, tol)
    assert not reason, (f"{name} says it cannot be exported with dynamic shapes ({reason}) but it exports "
                        "and runs at other sizes: remove dynamic_export_unsupported")


def _dims_text(dynamic: list) -> str:
    return ", ".join(f"input {i} dims {dims}" for i, dims in enumerate(dynamic) if dims)


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


def _garbage_like(t: torch.Tensor) -> torch.Tensor:
    """What ``to_empty`` may leave in a tensor, made deterministic: huge values, indices far out of range."""
    fill = True if t.dtype == torch.bool else 1e20 if t.is_floating_point() else 10 ** 6
    return torch.empty_like(t, device="cpu").fill_(fill)


def materialized_from_meta(build_fn: Callable[[], nn.Module]) -> nn.Module:
    """A module built on the meta device, then materialised on the CPU as ``to_empty`` does, with garbage in
    every tensor (so that state the state dict does not restore shows, rather than passing by luck)."""
    with torch.device("meta"):
        m = build_fn()
    return m._apply(_garbage_like)


def check_state_dict(entry: str | BlockInfo) -> None:
    """A state_dict saved and loaded with ``weights_only=True`` into a fresh instance reproduces the output; so
    does one built on the meta device and materialised with ``to_empty`` (how large networks are loaded), and one
    built on the meta device and loaded with ``assign=True`` (PyTorch's recipe without ``to_empty``)."""
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
    meta = materialized_from_meta(lambda: build(info, seed=123)).eval()
    meta.load_state_dict(sd, strict=True)
    with torch.no_grad():
        c = _run(meta, inputs)
    for x, y in zip(a, c):
        assert torch.equal(x, y), f"{info.name}: built on the meta device, materialised with to_empty and loaded, " \
                                  f"its output differs (a non-persistent buffer left uninitialised? layers.DerivedBuffers)"
    with torch.device("meta"):
        assigned = build(info, seed=123)
    assigned.load_state_dict(sd, strict=True, assign=True)
    left = [n for n, t in itertools.chain(assigned.named_parameters(), assigned.named_buffers()) if t.is_meta]
    assert not left, f"{info.name}: built on the meta device and loaded with assign=True, {left} stayed on meta"
    with torch.no_grad():
        d = _run(assigned.eval(), inputs)
    for x, y in zip(a, d):
        assert torch.equal(x, y), f"{info.name}: built on the meta device and loaded with assign=True, its output " \
                                  f"differs"


def check_onnx(entry: str | BlockInfo) -> None:
    """``torch.onnx.export(dynamo=True)`` gives a model onnxruntime runs with the eager result (atol 1e-4); unless
    the block is registered with ``dynamic_export_unsupported``, it is exported with the batch and sizes dynamic
    (as :func:`check_export_dynamic`) and must also be right at two other batches and sizes (the ONNX graph has
    none of the exported program's guards: what those would refuse, it computes wrongly).  A block registered
    with ``onnx_unsupported`` must state why and must really fail to export."""
    import logging
    import warnings
    import onnxruntime as ort
    info = _info(entry)
    m = build(info).eval()
    if info.dynamic_export_unsupported:
        inputs, others, spec = make_inputs(info), [], None
    else:
        inputs, others = _dynamic_cases(info)
        spec = _dynamic_spec(inputs, others)[1]
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as devnull:
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(devnull):
                prog = torch.onnx.export(m, inputs, dynamo=True, verbose=False, dynamic_shapes=spec)
        data = prog.model_proto.SerializeToString()
    except Exception as e:
        if info.onnx_unsupported:
            return
        raise AssertionError(f"{info.name}: torch.onnx.export failed: {type(e).__name__}: {str(e)[:300]}") from e
    assert not info.onnx_unsupported, (f"{info.name} says it cannot be exported to ONNX ({info.onnx_unsupported}) "
                                       "but it exports: remove the exception")
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for case in [inputs, *others]:
        feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), case)}
        got = [torch.from_numpy(o) for o in sess.run(None, feeds)]
        with torch.no_grad():
            ref = _run(m, case)
        assert len(got) == len(ref), f"{info.name}: ONNX model gives {len(got)} outputs, eager {len(ref)}"
        for i, (g, r) in enumerate(zip(got, ref)):
            assert g.shape == r.shape, (f"{info.name}: at {shapes_of(case)} ONNX output {i} has shape "
                                        f"{tuple(g.shape)}, eager {tuple(r.shape)}")
            err = (g.double() - r.double()).abs().max().item()
            assert err <= 1e-4 * max(1.0, r.abs().max().item()), \
                f"{info.name}: at {shapes_of(case)} ONNX output {i} differs by {err:.3g}"


def check_onnx_reason(entry: str | BlockInfo) -> None:
    """A block registered with ``onnx_unsupported`` (or ``dynamic_export_unsupported``) explains why in a
    sentence."""
    info = _info(entry)
    for key in ("onnx_unsupported", "dynamic_export_unsupported"):
        reason = getattr(info, key)
        if reason is not None:
            assert isinstance(reason, str) and len(reason.strip()) >= 20, f"{info.name}: {key} must explain why"


BLOCK_CHECKS: dict[str, Callable[[Any], None]] = {
    "forward": check_forward, "other_sizes": check_other_sizes, "backward": check_backward,
    "dtypes": check_dtypes, "channels_last": check_channels_last, "compile": check_compile,
    "compile_dynamic": check_compile_dynamic, "compile_train": check_compile_train,
    "export": check_export, "bad_input": check_bad_input, "state_dict": check_state_dict, "onnx": check_onnx,
    "export_dynamic": check_export_dynamic,
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
    input size), also when built on the meta device and loaded after ``to_empty`` or with ``assign=True``; a wrong
    channel count raises
    ValueError/TypeError naming the received shape; an empty batch gives empty logits."""
    info = _model_info(entry)
    m = _build_model(info, num_classes=7).eval()
    h, w = model_test_size(info)
    if info.test_input_size is not None:  # the model works at sizes other than its default
        h, w = h + 32, w + 32
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        out = _call(m, (x,), f"{info.name}: forward at {h}x{w}")
    assert out.shape == (1, 7), f"{info.name}: at {h}x{w} the logits have shape {tuple(out.shape)}, not (1, 7)"
    meta = materialized_from_meta(lambda: _build_model(info, num_classes=7)).eval()
    meta.load_state_dict(m.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(meta(x), out), f"{info.name}: built on the meta device, materialised with to_empty and " \
                                          "loaded, its output differs (state outside the state dict left uninitialised?)"
    with torch.device("meta"):
        assigned = _build_model(info, num_classes=7)
    assigned.load_state_dict(m.state_dict(), strict=True, assign=True)
    with torch.no_grad():
        assert torch.equal(assigned.eval()(x), out), f"{info.name}: built on the meta device and loaded with " \
                                                     "assign=True, its output differs"
    with torch.no_grad():
        empty = _call(m, (x[:0],), f"{info.name}: forward on an empty batch")
    assert empty.shape == (0, 7), f"{info.name}: on an empty batch the logits have shape {tuple(empty.shape)}"
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
    """``torch.compile(fullgraph=True)`` and ``torch.export`` give the eager logits (atol/rtol 1e-4), and so does
    ``torch.compile`` of the inference form (``visionblocks.fuse``: on the CPU its maps are channels-last, which
    layout-aware blocks handle on other code paths).  Slow."""
    import torch._dynamo
    from .inference import fuse
    info = _model_info(entry)
    m = _build_model(info, num_classes=10).eval()
    x = _model_input(info, batch=1)
    with torch.no_grad():
        ref = m(x)
        torch._dynamo.reset()
        compiled = torch.compile(m, fullgraph=True, backend="eager")
        got = _call(compiled, (x,), f"{info.name}: torch.compile(fullgraph=True)")
        assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4), f"{info.name}: compiled vs eager logits differ"
        fused = fuse(copy.deepcopy(m))
        ref_fused = fused(x)
        got = _call(torch.compile(fused, fullgraph=True, backend="eager"), (x,),
                    f"{info.name}: torch.compile(fullgraph=True) of the fused model")
        assert torch.allclose(got, ref_fused, atol=1e-4, rtol=1e-4), \
            f"{info.name}: compiled vs eager logits of the fused model differ"
        try:
            ep = torch.export.export(m, (x,))
        except Exception as e:
            raise AssertionError(f"{info.name}: torch.export failed: {type(e).__name__}: {str(e)[:300]}") from e
        assert torch.allclose(ep.module()(x), ref, atol=1e-4, rtol=1e-4), \
            f"{info.name}: exported vs eager logits differ"


def check_model_export_dynamic(entry: str | ModelInfo) -> None:
    """``torch.export`` with a dynamic batch, and a dynamic H and W for a model that runs at other sizes (one with
    a ``test_input_size``), keeps them symbolic, and the program gives the eager logits at another batch and at
    an odd size (atol/rtol 1e-4 of the logits' scale): one exported program (and its ONNX translation, which
    drops the program's guards) is right at every size.  The example is at least 128 pixels and the odd size
    larger, so no stage of either is a single pixel or patch (torch.export specialises a size of 1: a program
    exported where a stage is 2 wide or more refuses inputs that make it 1, as SCNet exported at 128 refuses
    97-112 pixels, where its pooled 1/64 map is one pixel).  A model registered with
    ``dynamic_export_unsupported`` must state why and really fail, fix a size or refuse one of those inputs.
    Slow."""
    info = _model_info(entry)
    reason = info.dynamic_export_unsupported
    assert reason is None or (isinstance(reason, str) and len(reason.strip()) >= 20), \
        f"{info.name}: dynamic_export_unsupported must explain why, in a sentence"
    m = _build_model(info, num_classes=10).eval()
    h, w = model_test_size(info)
    if info.test_input_size is None:  # a fixed size: only the batch varies
        inputs, others = (_model_input(info, batch=2),), [(_model_input(info, batch=3),)]
    else:
        h, w = max(2 * h, 128), max(2 * w, 128)
        inputs = (_model_input(info, batch=2, size=(h, w)),)
        others = [(_model_input(info, batch=3, size=(h, w)),),
                  (_model_input(info, batch=1, size=(h + 33, w + 39)),)]
    _check_dynamic_program(info.name, m, inputs, others, reason)


# --------------------------------------------------------------------------------------------- backbones
# The backbone API of issue 13, as timm defines it: feature_info true to a real forward, features_only and
# pruning, output_stride, the classifier API, pretrained_cfg, gradient checkpointing, drop_path_rate, in_chans.
@contextlib.contextmanager
def _registered(info: ModelInfo) -> Iterator[str]:
    """``info`` reachable by ``create_model(info.name)`` for the duration (a user's entry not registered, or
    registered under another object, is put in place and the registry restored afterwards)."""
    from . import registry
    old = registry._MODELS.get(info.name)
    if old is info:
        yield info.name
        return
    registry._MODELS[info.name] = info
    try:
        yield info.name
    finally:
        if old is None:
            registry._MODELS.pop(info.name, None)
        else:
            registry._MODELS[info.name] = old


def _create(info: ModelInfo, seed: int = 0, **kwargs: Any) -> nn.Module:
    """``create_model(info.name, **kwargs)`` seeded: the public path (features_only, output_stride, pretrained_cfg)."""
    from .registry import create_model
    torch.manual_seed(seed)
    with _registered(info) as name:
        try:
            return create_model(name, **kwargs)
        except ValueError:  # a refused argument: the checks that expect one catch it
            raise
        except Exception as e:
            call = ", ".join([repr(name)] + [f"{k}={v!r}" for k, v in kwargs.items()])
            raise AssertionError(f"{name}: create_model({call}) failed: {type(e).__name__}: {str(e)[:300]}") from e


def _expect_refusal(fn: Callable[[], Any], what: str, says: str, error: type[Exception] = ValueError) -> None:
    """``fn()`` raises ``error`` (default ValueError) whose message contains ``says``."""
    try:
        fn()
    except error as e:
        assert says in str(e), f"{what}: the {error.__name__} should say {says!r}: {e}"
    except Exception as e:
        raise AssertionError(f"{what} raised {type(e).__name__}, not {error.__name__}: {str(e)[:200]}") from e
    else:
        raise AssertionError(f"{what} was accepted (expected a {error.__name__})")


def _all(fi: Any) -> list[int]:
    return list(range(len(fi)))


def _feature_sizes(info: ModelInfo) -> list[tuple[int, int]]:
    """Two input sizes (the second not square) for a model that takes any size; its one size otherwise."""
    h, w = model_test_size(info)
    return [(h, w)] if info.test_input_size is None else [(h, w), (h + 32, w + 16)]


def _check_feature_maps(name: str, feature_info: Any, feats: Any, batch: int, h: int, w: int,
                        what: str = "feature") -> None:
    """``feats`` holds one (batch, num_chs, H / r, W / r) map (floor or ceil) per ``feature_info`` entry."""
    assert isinstance(feats, (list, tuple)) and len(feats) == len(feature_info), \
        f"{name}: {len(feats) if isinstance(feats, (list, tuple)) else type(feats).__name__} {what}s for " \
        f"{len(feature_info)} feature_info entries"
    for e, f in zip(feature_info, feats):
        r = e["reduction"]
        assert isinstance(f, torch.Tensor) and f.ndim == 4 and tuple(f.shape[:2]) == (batch, e["num_chs"]) \
            and f.shape[2] in (h // r, math.ceil(h / r)) and f.shape[3] in (w // r, math.ceil(w / r)), \
            (f"{name}: {what} {e['index']} ({e['module']}) at input {h}x{w} has shape "
             f"{tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__}; feature_info promises "
             f"({batch}, {e['num_chs']}, {h}/{r}, {w}/{r})")
        assert torch.isfinite(f).all(), f"{name}: {what} {e['index']} has non-finite values"


def _check_feature_info_entries(name: str, m: nn.Module) -> Any:
    fi = getattr(m, "feature_info", None)
    assert fi is not None and hasattr(m, "forward_intermediates"), \
        f"{name}: no feature_info/forward_intermediates (declare the features: see visionblocks.features)"
    assert len(fi) >= 1, f"{name}: feature_info is empty"
    for e in fi:
        assert isinstance(e["num_chs"], int) and e["num_chs"] > 0, f"{name}: feature {e} has no positive int num_chs"
        assert isinstance(e["reduction"], int) and e["reduction"] >= 1, f"{name}: feature {e} has no int reduction >= 1"
        try:
            m.get_submodule(e["module"])
        except AttributeError as err:
            raise AssertionError(f"{name}: feature {e['index']} names module {e['module']!r}, which does not exist") from err
    reds = fi.reduction(_all(fi))
    assert reds == sorted(reds), f"{name}: feature reductions {reds} decrease"
    plan = getattr(m, "feature_plan", None)
    if plan is not None:  # BackboneMixin: the entry's module is the last module path of its steps (if it has any)
        assert len(plan) == len(fi), f"{name}: feature_plan has {len(plan)} entries for {len(fi)} features"
        for e, steps in zip(fi, plan):
            mods = [s for s in steps if not callable(getattr(type(m), s, None))]
            assert not mods or mods[-1] == e["module"], \
                f"{name}: feature {e['index']} names module {e['module']!r}, its last step module is {mods[-1]!r}"
    return fi


def check_model_feature_info(entry: str | ModelInfo) -> None:
    """``feature_info`` (channels, reduction, module) is true to a real ``forward_intermediates`` at two input
    sizes; its final output is ``forward_features``; ``indices``, ``stop_early``, ``norm`` (the last map keeps
    its shape) and ``output_fmt="NHWC"`` behave as in timm; an index outside the features is a ValueError naming
    how many the model offers."""
    info = _model_info(entry)
    m = _create(info, num_classes=0).eval()
    fi = _check_feature_info_entries(info.name, m)
    n = len(fi)
    sizes = _feature_sizes(info)
    for k, (h, w) in enumerate(sizes):
        x = torch.randn(1, info.input_size[0], h, w)
        with torch.no_grad():
            final, feats = _call(m.forward_intermediates, (x,), f"{info.name}: forward_intermediates at {h}x{w}")
            ref = m.forward_features(x)
        _check_feature_maps(info.name, fi, feats, 1, h, w)
        _close([final], [ref], f"{info.name}: forward_intermediates' final output vs forward_features", 1e-5, 1e-6)
        if k:
            continue
        with torch.no_grad():
            first = m.forward_intermediates(x, indices=[0], stop_early=True, intermediates_only=True)
            last = m.forward_intermediates(x, indices=1, output_fmt="NHWC", intermediates_only=True)
            normed = m.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)
        if len(fi) > 1:  # the final features of a run stopped early are not computed: refused
            _expect_refusal(lambda: m.forward_intermediates(x, indices=[0], stop_early=True),
                            f"{info.name}: forward_intermediates(indices=[0], stop_early=True)", "intermediates_only")
        assert len(first) == len(last) == len(normed) == 1, \
            f"{info.name}: forward_intermediates gave {len(first)}/{len(last)}/{len(normed)} maps for one index"
        _close(first, feats[:1], f"{info.name}: forward_intermediates(indices=[0], stop_early=True)", 1e-5, 1e-6)
        _close(last, [feats[-1].permute(0, 2, 3, 1)], f"{info.name}: forward_intermediates(output_fmt='NHWC')",
               1e-5, 1e-6)
        assert normed[0].shape == feats[-1].shape, \
            (f"{info.name}: forward_intermediates(norm=True) gives the last feature as {tuple(normed[0].shape)}, not "
             f"{tuple(feats[-1].shape)} (norm applies the final norm only: override final_norm_to_map)")
    h, w = sizes[0]
    x = torch.randn(1, info.input_size[0], h, w)
    for bad in (n, -n - 1):
        _expect_refusal(lambda b=bad: m.forward_intermediates(x, indices=[b]),
                            f"{info.name}: forward_intermediates(indices=[{bad}])", f"{n} features")


def check_model_features_only(entry: str | ModelInfo) -> None:
    """``create_model(name, features_only=True, out_indices=...)`` returns the chosen features, equal to the
    full model's, with the head and the stages after the last index pruned (fewer parameters; every parameter
    kept gets a gradient, with and without the final norm); an index outside the model's features is a
    ValueError naming what it offers (nothing silently returns fewer maps)."""
    from .features import FeatureListNet
    info = _model_info(entry)
    h, w = model_test_size(info)
    x = torch.randn(2, info.input_size[0], h, w)
    full = _create(info).eval()
    n = len(full.feature_info)
    with torch.no_grad():
        ref = full.forward_intermediates(x, intermediates_only=True)
    sub = (0,) if n == 1 else (0, 1) if n == 2 else (0, n - 2)  # n > 2: the last stage is pruned
    part = _create(info, features_only=True, out_indices=sub).eval()
    assert isinstance(part, FeatureListNet) and tuple(part.out_indices) == sub, \
        f"{info.name}: features_only=True, out_indices={sub} gave {type(part).__name__} " \
        f"with out_indices {getattr(part, 'out_indices', None)}"
    own, src = part.model.state_dict(), full.state_dict()
    extra = sorted(set(own) - set(src))
    assert not extra, f"{info.name}: the features-only model has state the full model lacks: {extra[:5]}"
    part.model.load_state_dict({k: v for k, v in src.items() if k in own}, strict=True)
    with torch.no_grad():
        got = _call(part, (x,), f"{info.name}: features_only forward")
    assert isinstance(got, list) and len(got) == len(sub), \
        f"{info.name}: out_indices={sub} gave {len(got) if isinstance(got, list) else type(got).__name__} features"
    _close(got, [ref[i] for i in sub], f"{info.name}: features_only vs the full model's features", 1e-5, 1e-6)
    for key, fn in (("channels", "channels"), ("reduction", "reduction")):
        want = [getattr(full.feature_info, fn)(i) for i in sub]
        assert getattr(part.feature_info, fn)() == want, \
            f"{info.name}: features_only feature_info.{fn}() is {getattr(part.feature_info, fn)()}, not {want}"
    assert count_params(part) < count_params(full), \
        f"{info.name}: features_only with out_indices={sub} kept every parameter (head and later stages not pruned)"
    for i, name in zip(sub, part.feature_info.module_name()):  # named as the extractor's get_submodule finds them
        want = full.feature_info.module_name(i)
        try:
            found = part.get_submodule(name)
        except AttributeError:
            found = None
        assert found is part.model.get_submodule(want), \
            f"{info.name}: features_only feature_info names module {name!r}, not the extractor's path to {want!r}"
    with torch.device("meta"):
        all_fx = _create(info, features_only=True)
    assert tuple(all_fx.out_indices) == tuple(range(n)), \
        f"{info.name}: features_only=True with no out_indices gives {all_fx.out_indices}, not every feature"
    for norm in (False, True):  # every parameter kept is used (DistributedDataParallel stops on unused ones)
        fx = FeatureListNet(_create(info).eval(), norm=norm)
        sum(f.sum() for f in fx(x)).backward()
        unused = [k for k, p in fx.named_parameters() if p.requires_grad and p.grad is None]
        assert not unused, f"{info.name}: the feature extractor (norm={norm}) keeps parameters its forward never " \
                           f"uses: {unused[:4]}{' ...' if len(unused) > 4 else ''}"
    for bad in ((n,), (-n - 1,), (0, 0)):  # FeatureListNet checks the indices before it prunes anything
        _expect_refusal(lambda b=bad: FeatureListNet(full, b), f"{info.name}: features_only out_indices={bad}",
                            "distinct" if bad == (0, 0) else f"offers {n} features")


def check_model_prune(entry: str | ModelInfo) -> None:
    """``prune_intermediate_layers`` as timm's: pruned to feature k (the first, a middle one, the last; head kept
    or not), the kept features equal the full model's, ``forward`` returns ``forward_features``' output unpooled
    with ``num_features`` channels (the last kept feature's where the network was cut short or its final
    convolution went with the head), ``reset_classifier(n)`` then classifies (B, n) and every parameter kept gets
    a gradient (from the logits or the kept features); a refused index leaves the model as it was."""
    info = _model_info(entry)
    h, w = model_test_size(info)
    x = torch.randn(2, info.input_size[0], h, w)
    full = _create(info, num_classes=7).eval()
    n = len(full.feature_info)
    with torch.no_grad():
        ref = full.forward_intermediates(x, intermediates_only=True)
    for k in sorted({0, n // 2, n - 1}):
        for prune_head in (True, False):
            what = f"{info.name}: prune_intermediate_layers({list(range(k + 1))}, prune_head={prune_head})"
            m = copy.deepcopy(full)
            try:
                m.prune_intermediate_layers(list(range(k + 1)), prune_head=prune_head)
            except Exception as e:
                raise AssertionError(f"{what} failed: {type(e).__name__}: {str(e)[:300]}") from e
            with torch.no_grad():
                out = _call(m, (x,), f"{what}, then forward")
                feats = _call(lambda t: m.forward_intermediates(t, indices=[k], intermediates_only=True), (x,),
                              f"{what}, then forward_intermediates")
            _close(feats, [ref[k]], f"{what}: feature {k} vs the full model's", 1e-5, 1e-6)
            if prune_head or (k < n - 1 and not full.head_fits_every_feature):
                cut = k < n - 1 or not full.final_is_norm
                want = full.feature_info[k]["num_chs"] if cut else full.num_features
                assert m.num_classes == 0 and m.num_features == want, \
                    f"{what}: num_classes {m.num_classes}, num_features {m.num_features} (want 0, {want})"
                layout = m.head_layouts.get(out.ndim)
                assert out.ndim >= 3 and layout is not None and out.shape[layout[0]] == want, \
                    f"{what}: forward gives {tuple(out.shape)}, not forward_features' unpooled {want}-channel output"
            m.reset_classifier(5)
            with torch.no_grad():
                logits = _call(m, (x,), f"{what}, reset_classifier(5), then forward")
            assert logits.shape == (2, 5), f"{what}, reset_classifier(5): forward gives {tuple(logits.shape)}"
            m.train()
            kept = m.forward_intermediates(x, indices=list(range(k + 1)), intermediates_only=True)
            (m(x).sum() + sum(f.sum() for f in kept)).backward()
            unused = [name for name, p in m.named_parameters() if p.grad is None]
            assert not unused, f"{what}, reset_classifier(5): parameters neither forward nor the kept features " \
                               f"use: {unused[:4]}"
    before = {k: v.clone() for k, v in full.state_dict().items()}
    _expect_refusal(lambda: full.prune_intermediate_layers([n]), f"{info.name}: prune_intermediate_layers([{n}])",
                    f"{n} features")
    after = full.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items()), \
        f"{info.name}: a refused prune_intermediate_layers changed the model"


def check_model_output_stride(entry: str | ModelInfo) -> None:
    """A model that declares ``output_strides`` runs at each with dilated convolutions: parameters unchanged,
    ``feature_info`` reductions capped at the stride, and true to a real forward at the smallest stride.  Its
    native stride asks for nothing (taken by every model, as timm pipelines pass it); another stride it does not
    offer is a ValueError naming what it offers."""
    info = _model_info(entry)
    strides = tuple(info.output_strides)
    own = info.native_output_stride()
    for bad in sorted({4, 16, 64} - set(strides) - {own})[:2]:
        _expect_refusal(lambda b=bad: _create(info, output_stride=b), f"{info.name}: output_stride={bad}", "offers")
    with torch.device("meta"):
        got = [(k, tuple(v.shape)) for k, v in _create(info, output_stride=own).state_dict().items()]
        want = [(k, tuple(v.shape)) for k, v in _create(info).state_dict().items()]
    assert got == want, f"{info.name}: output_stride={own} (its native stride) changed the model"
    if not strides:
        return
    native = max(strides)
    with torch.device("meta"):  # the native model's names and shapes; nothing allocated
        ref = _create(info)
    ref_red = ref.feature_info.reduction(_all(ref.feature_info))
    assert max(ref_red) == native, \
        f"{info.name}: its deepest feature is at /{max(ref_red)}, but its largest output_stride is {native}"
    h, w = model_test_size(info)
    x = torch.randn(1, info.input_size[0], h, w)
    for os_ in sorted(strides):
        if os_ == native:
            continue
        real = os_ == min(strides)  # the smallest stride runs for real; the others are built on the meta device
        with contextlib.nullcontext() if real else torch.device("meta"):
            m = _create(info, output_stride=os_).eval()
        assert count_params(m) == count_params(ref), \
            f"{info.name}: output_stride={os_} has {count_params(m)} parameters, the native model {count_params(ref)}"
        fi = m.feature_info
        want = [min(r, os_) for r in ref_red]
        assert fi.reduction(_all(fi)) == want, \
            f"{info.name}: output_stride={os_}: feature reductions {fi.reduction(_all(fi))}, expected {want}"
        assert fi.channels(_all(fi)) == ref.feature_info.channels(_all(ref.feature_info)), \
            f"{info.name}: output_stride={os_} changes the feature channels"
        if not real:
            continue
        with torch.no_grad():
            feats = _call(lambda t: m.forward_intermediates(t, intermediates_only=True), (x,),
                          f"{info.name}: forward_intermediates at output_stride={os_}")
            out = _call(m, (x,), f"{info.name}: forward at output_stride={os_}")
        _check_feature_maps(info.name, fi, feats, 1, h, w, f"output_stride={os_} feature")
        assert out.shape == (1, m.num_classes), f"{info.name}: output_stride={os_} logits {tuple(out.shape)}"


def check_model_classifier(entry: str | ModelInfo) -> None:
    """timm's classifier API: ``num_classes``, ``num_features``, ``get_classifier()``, ``forward_head(x,
    pre_logits=True)``, ``reset_classifier(n)`` (0: ``forward`` gives the pooled ``num_features``; a negative count:
    ValueError, a non-int: TypeError, naming num_classes); ``num_classes=-1`` is refused by ``create_model``."""
    info = _model_info(entry)
    h, w = model_test_size(info)
    m = _create(info, num_classes=7).eval()
    assert m.num_classes == 7, f"{info.name}: num_classes is {m.num_classes} for a model built with 7"
    assert isinstance(m.num_features, int) and m.num_features > 0, \
        f"{info.name}: num_features {m.num_features!r} is not a positive int"
    nf = m.head_hidden_size  # the pre-logits width (num_features unless a head convolution follows the pooling)
    fc = m.get_classifier()
    assert isinstance(fc, nn.Linear) and fc.in_features == nf and fc.out_features == 7, \
        f"{info.name}: get_classifier() is {fc}, not Linear({nf}, 7)"
    x = torch.randn(1, info.input_size[0], h, w)
    with torch.no_grad():
        feats = m.forward_features(x)
        layout = m.head_layouts.get(feats.ndim)
        assert layout is not None and feats.shape[layout[0]] == m.num_features, \
            f"{info.name}: forward_features gives {tuple(feats.shape)}, not num_features = {m.num_features} channels"
        pre = _call(lambda t: m.forward_head(t, pre_logits=True), (feats,), f"{info.name}: forward_head(pre_logits=True)")
        assert pre.shape == (1, nf), f"{info.name}: pre-logits of shape {tuple(pre.shape)}, not (1, {nf})"
        m.reset_classifier(5)
        assert m.num_classes == 5, f"{info.name}: num_classes is {m.num_classes} after reset_classifier(5)"
        out = m(x)
        assert out.shape == (1, 5), f"{info.name}: after reset_classifier(5) forward gives {tuple(out.shape)}"
        m.reset_classifier(0)
        out = m(x)
    assert m.num_classes == 0 and out.shape == (1, nf), \
        f"{info.name}: after reset_classifier(0) forward gives {tuple(out.shape)}, not the pooled (1, {nf})"
    for bad, error in ((-1, ValueError), (2.5, TypeError)):
        _expect_refusal(lambda b=bad: m.reset_classifier(b), f"{info.name}: reset_classifier({bad})", "num_classes",
                            error)
    _expect_refusal(lambda: _create(info, num_classes=-1), f"{info.name}: create_model(num_classes=-1)",
                        "num_classes")


_NO_DECAY_PARTS = ("pos_embed", "cls_token", "rel_table", "relative_position")
_CFG_KEYS = ("input_size", "crop_pct", "interpolation", "mean", "std", "first_conv", "classifier", "paper", "license")


def check_model_pretrained_cfg(entry: str | ModelInfo) -> None:
    """``pretrained_cfg`` holds the data configuration and provenance (``input_size``, ``crop_pct``,
    ``interpolation``, ``mean``, ``std``, ``first_conv``, ``classifier``, ``paper``, ``license``); ``first_conv``
    is the convolution that reads the ``in_chans`` input channels and ``classifier`` the module
    ``get_classifier()`` returns; ``resolve_data_config`` agrees; ``no_weight_decay()`` names real parameters,
    position embeddings and relative-position tables among them.  Built on the meta device: nothing is allocated."""
    from .models import resolve_data_config
    info = _model_info(entry)
    with torch.device("meta"):
        m = _create(info, in_chans=2)
    cfg = m.pretrained_cfg
    missing = [k for k in _CFG_KEYS if k not in cfg]
    assert not missing, f"{info.name}: pretrained_cfg lacks {missing}"
    assert tuple(cfg["input_size"]) == tuple(info.input_size), \
        f"{info.name}: pretrained_cfg input_size {cfg['input_size']} is not the registry's {info.input_size}"
    assert cfg["interpolation"] in ("bilinear", "bicubic", "nearest"), f"{info.name}: interpolation {cfg['interpolation']!r}"
    assert 0 < cfg["crop_pct"] <= 1, f"{info.name}: crop_pct {cfg['crop_pct']} outside (0, 1]"
    assert len(cfg["mean"]) == len(cfg["std"]) == info.input_size[0] and all(s > 0 for s in cfg["std"]), \
        f"{info.name}: mean {cfg['mean']} / std {cfg['std']} are not {info.input_size[0]} values (std > 0)"
    try:
        conv = m.get_submodule(cfg["first_conv"])
    except AttributeError as err:
        raise AssertionError(f"{info.name}: first_conv {cfg['first_conv']!r} is not a module") from err
    w = getattr(conv, "weight", None)
    assert w is not None and w.ndim >= 2 and (getattr(conv, "in_channels", None) or w.shape[1]) == 2, \
        f"{info.name}: first_conv {cfg['first_conv']!r} ({type(conv).__name__}) does not read the 2 input channels " \
        f"of a model built with in_chans=2"
    assert m.get_submodule(to_names(cfg["classifier"])[0]) is m.get_classifier(), \
        f"{info.name}: pretrained_cfg classifier {cfg['classifier']!r} is not get_classifier()"
    dc = resolve_data_config(m)
    for k in ("input_size", "interpolation", "mean", "std", "crop_pct"):
        assert dc.get(k) == cfg[k], f"{info.name}: resolve_data_config {k}={dc.get(k)!r}, pretrained_cfg {cfg[k]!r}"
    names = set(m.no_weight_decay())
    own = dict(m.named_parameters())
    assert names <= set(own), f"{info.name}: no_weight_decay names {sorted(names - set(own))[:5]}, not parameters"
    pos = sorted(n for n in own if any(k in n for k in _NO_DECAY_PARTS) and n not in names)
    assert not pos, f"{info.name}: position embeddings / tables are decayed: {pos[:5]}"


def _saved_bytes(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int]:
    """``fn()`` and the bytes of the distinct tensors autograd saves for backward outside checkpointed regions
    (a checkpointed region stores only its inputs: its own saves are recomputed in backward)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
        except Exception:  # tensors without a storage (some tensor subclasses) are not counted
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def check_model_grad_checkpointing(entry: str | ModelInfo) -> None:
    """``set_grad_checkpointing(True)`` keeps the training output, every gradient and the BatchNorm running
    statistics after the step (the recomputation in backward must not update them a second time), and autograd
    stores less (the stages are recomputed in backward)."""
    info = _model_info(entry)
    h, w = model_test_size(info)
    a = _create(info, num_classes=4).train()
    b = copy.deepcopy(a)
    b.set_grad_checkpointing(True)
    x = torch.randn(2, info.input_size[0], h, w)
    torch.manual_seed(1)
    ya, saved_a = _saved_bytes(lambda: a(x))
    torch.manual_seed(1)
    yb, saved_b = _saved_bytes(lambda: _call(b, (x,), f"{info.name}: forward with gradient checkpointing"))
    _close([yb], [ya], f"{info.name}: output with gradient checkpointing", 1e-5, 1e-6)
    ya.square().sum().backward()
    yb.square().sum().backward()
    pb = dict(b.named_parameters())
    for n, p in a.named_parameters():
        assert p.grad is not None and pb[n].grad is not None, f"{info.name}: {n} has no gradient"
        _close([pb[n].grad], [p.grad], f"{info.name}: gradient of {n} with gradient checkpointing", 1e-4, 1e-5)
    bb = dict(b.named_buffers())
    for n, buf in a.named_buffers():
        _close([bb[n].double()], [buf.double()], f"{info.name}: buffer {n} after a step with gradient checkpointing",
               1e-5, 1e-6)
    assert saved_b < saved_a, \
        f"{info.name}: with gradient checkpointing autograd saves {saved_b} bytes, without {saved_a}: nothing recomputed"


def check_model_drop_path_in_chans(entry: str | ModelInfo) -> None:
    """``drop_path_rate`` and ``drop_rate`` are accepted with ``in_chans=1`` (stochastic depth adds no parameter:
    the state-dict keys and shapes are those of the plain model) and the model trains and evaluates; invalid
    ``in_chans``/``drop_path_rate``/``drop_rate`` are ValueErrors naming the argument."""
    info = _model_info(entry)
    h, w = model_test_size(info)
    kw = dict(num_classes=3, in_chans=1)
    m = _create(info, drop_path_rate=0.1, drop_rate=0.1, **kw)
    with torch.device("meta"):
        plain = _create(info, **kw)
    got = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
    want = [(k, tuple(v.shape)) for k, v in plain.state_dict().items()]
    assert got == want, f"{info.name}: drop_path_rate/drop_rate change the state dict: " \
                        f"{sorted(set(got) ^ set(want))[:5] or 'the order'}"
    x = torch.randn(2, 1, h, w)
    out = _call(m.train(), (x,), f"{info.name}: training forward with drop_path_rate=0.1, in_chans=1")
    assert out.shape == (2, 3) and torch.isfinite(out).all(), f"{info.name}: training logits {tuple(out.shape)}"
    with torch.no_grad():
        out = _call(m.eval(), (x[:1],), f"{info.name}: eval forward with drop_path_rate=0.1, in_chans=1")
    assert out.shape == (1, 3), f"{info.name}: eval logits {tuple(out.shape)} for num_classes=3"
    for arg, bad in (("in_chans", 0), ("drop_path_rate", -0.1), ("drop_path_rate", 1.0), ("drop_rate", 1.5)):
        _expect_refusal(lambda a=arg, b=bad: _create(info, **{a: b}), f"{info.name}: create_model({arg}={bad})", arg)


def check_model_features_compile_export(entry: str | ModelInfo) -> None:
    """A features-only backbone passes ``torch.compile(fullgraph=True)`` and ``torch.export`` with the eager
    maps (atol/rtol 1e-4).  Slow."""
    import torch._dynamo
    info = _model_info(entry)
    fx = _create(info, features_only=True).eval()
    x = _model_input(info, batch=1)
    with torch.no_grad():
        ref = fx(x)
        torch._dynamo.reset()
        compiled = torch.compile(fx, fullgraph=True, backend="eager")
        try:
            got = compiled(x)
        except Exception as e:  # a graph break under fullgraph=True raises
            raise AssertionError(f"{info.name}: torch.compile(fullgraph=True) of the features-only backbone failed: "
                                 f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
        _close(list(got), list(ref), f"{info.name}: compiled vs eager features", 1e-4, 1e-4)
        try:
            ep = torch.export.export(fx, (x,))
        except Exception as e:
            raise AssertionError(f"{info.name}: torch.export of the features-only backbone failed: "
                                 f"{type(e).__name__}: {str(e)[:300]}") from e
        _close(list(ep.module()(x)), list(ref), f"{info.name}: exported vs eager features", 1e-4, 1e-4)


BACKBONE_CHECKS: dict[str, Callable[[Any], None]] = {
    "feature_info": check_model_feature_info, "features_only": check_model_features_only,
    "output_stride": check_model_output_stride, "classifier": check_model_classifier,
    "pretrained_cfg": check_model_pretrained_cfg, "grad_checkpointing": check_model_grad_checkpointing,
    "drop_path_in_chans": check_model_drop_path_in_chans, "prune": check_model_prune,
}
"""The fast backbone checks (``check_model_features_compile_export`` is the slow one)."""

MODEL_CHECKS: dict[str, Callable[[Any], None]] = {
    "forward_backward": check_model_forward_backward, "inputs": check_model_inputs,
    "paper_counts": check_model_paper_counts, "compile_export": check_model_compile_export,
    "export_dynamic": check_model_export_dynamic, **BACKBONE_CHECKS,
    "features_compile_export": check_model_features_compile_export,
}


def check_model(entry: str | ModelInfo, skip: tuple[str, ...] = ()) -> None:
    """Run every model contract check (except those in ``skip``, e.g. the slow ``"compile_export"`` and
    ``"features_compile_export"``)."""
    for name, fn in MODEL_CHECKS.items():
        if name not in skip:
            fn(entry)
