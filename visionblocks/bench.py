"""``visionblocks bench``: which block (or model) should I put in my network, and what does it cost?

For every registered block (or a family, or named blocks) at a realistic shape — batch 8 at a ResNet
stage (256 channels at 56x56; a ``conv`` block with as many channels out as in, at stride 1 except the
upsampling ``transposed_conv``) for ``nchw``, ``conv`` and ``head`` blocks, the example configuration with
batch 8 otherwise — or for named models (``--models resnet50,'se_*'``, batch 8 at 224x224) it measures
parameters, FLOPs and MACs (``torch.utils.flop_counter``: matmuls, convolutions and attention; element-wise
ops are not counted; printed as K/M/G, raw numbers in the CSV/JSON), the **forward** latency (eval mode, no
grad: inference) and the **forward+backward** latency (train mode, the input requires grad, as inside a
network), and peak memory (on CUDA the allocator's peak during one forward+backward; on CPU an estimate: the
bytes of the output plus the activations autograd saves for backward, unique storages counted once).

Every latency comes from :func:`visionblocks.measure.time_callables`, the product's one timing routine: the
figures of one row are timed side by side in paired rounds, after warm-up until stable, with at least
``--repeats`` rounds and ``--min-time`` seconds of timed calls per row; medians and interquartile ranges are
reported.  A row is **flagged** (``*`` after its name, the ``flags`` column, grey in the PNG) when a figure's relative
spread IQR/median is above ``--max-spread``, or when its forward is still slower than its forward+backward
after re-measuring it (twice): such a figure is noise, not a fact.

``--compile`` times ``torch.compile``'d copies in the same rounds as the eager module and reports the
speed-ups (eager / compiled, paired) and their geometric mean.  For the memory-bound gates of
:data:`GATE_PASSES` it also times ONE broadcast multiply ``x * s`` of the same input (``s`` of shape
(B, C, 1, 1)) and reports the gate's floor (its pass count times that multiply) and its forward / floor.  A
block that fails is reported with its error and the run goes on.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import inspect
import json
import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from typing import Callable, NamedTuple

import torch
import torch.nn as nn

from . import measure, registry, testing
from .inference import to_channels_last
from .layers import missing_dirs, write_all_or_none

__all__ = ["BenchResult", "BenchConfig", "GateFloor", "GATE_PASSES", "build_for_bench", "build_model_for_bench", "bench_block",
           "bench_model", "select_models", "bench_description", "format_results", "compile_summary",
           "write_outputs", "plot", "add_bench_parser", "cmd_bench"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}

class GateFloor(NamedTuple):
    """A memory-bound gate's floor, in units of ONE broadcast multiply ``y = x * s`` of the same tensor (it reads x
    and writes y: 2 full-tensor transfers, 1 pass; a full-tensor read or write alone is 1/2).

    ``passes``: the floor the bench reports -- the passes its equations need when every operation is one kernel
    that reads its full-size operands and writes its full-size result (what eager PyTorch must do: two poolings
    of one tensor are two reads, a product with two broadcast gates is two passes; small maps, the gates' MLPs
    and their small convolutions are not counted).  ``fused``: the passes left when every element-wise operation
    is fused into the pass that consumes it (one generated kernel per pass, as ``torch.compile`` writes them), a
    lower bound no eager implementation reaches.  docs/benchmarks_notes.md ("Floors of the memory-bound gates")
    argues both counts, at the bench's ResNet-stage shape (256 channels; sge: 64 groups)."""
    passes: float
    why: str
    fused: float
    fused_why: str


GATE_PASSES: dict[str, GateFloor] = {
    "se": GateFloor(1.5, "pool reads x (1/2); y = x * s (1)", 1.5, "the same: read x twice, write y once"),
    "eca": GateFloor(1.5, "as se: pool (1/2); y = x * s (1)", 1.5, "the same"),
    "cbam": GateFloor(4.0, "mean and max over H, W: two reads (1); x' = Mc * x (1); mean and max over C of x': two "
                           "reads (1); y = Ms * x' (1)",
                      3.0, "the two pools of x (1); Mc * x fused into the two reductions over C (1); "
                           "y = x * Mc * Ms (1)"),
    "coord_attention": GateFloor(3.0, "mean over W and mean over H: two reads (1); x * g_h (1), then * g_w (1)",
                                 2.0, "the two pools (1); y = x * g_h * g_w in one pass (1)"),
    "sge": GateFloor(3.0, "pool (1/2); c = g . x, one batched product reading x (1/2); y = x * sigmoid(a) (1); the "
                          "(B, G, H, W) maps are 1/4 of x: c written, read for mu and sigma, the affine and the "
                          "sigmoid each read and write it, y reads it: 8 quarter transfers (1)",
                     2.5, "pool (1/2); c = g . x, reading x and writing the 1/4-size map (5/8); normalisation and "
                          "sigmoid in one pass over the map (1/4); y = x * a, reading x and the map (9/8)"),
    "shuffle_attention": GateFloor(2.75, "channel half: pool (1/4), product (1/2); spatial half: GroupNorm "
                                         "statistics (1/4), GroupNorm with W2, b2 in its affine (1/2), sigmoid "
                                         "(1/2), product (3/4); both written to their shuffled places (no copy)",
                                   1.5, "pool of the channel half (1/4); GroupNorm statistics of the spatial half "
                                        "(1/4); both gated halves written to their shuffled places (1)"),
    "triplet_attention": GateFloor(6.0, "[max; mean] over H, over W and over C: six reads (3); g_cw + g_hc written "
                                        "full-size (1/2), + g_hw in place (1), * x in place (3/2)",
                                   4.0, "the six pools (3); y = x * (g_cw + g_hc + g_hw) / 3 in one pass (1)"),
}


@dataclass
class BenchResult:
    """One row of the benchmark: a block's (or model's) counts and timings, or its error.

    ``params``, ``flops`` and ``macs`` are raw counts (``macs = flops // 2``); times are medians in ms over the
    paired rounds, ``*_iqr_ms`` their interquartile ranges; ``*_speedup`` = eager / compiled (paired);
    ``floor_ms`` = ``floor_passes`` x ``mul_ms`` and ``floor_ratio`` = forward / floor (paired);
    ``flags`` says why a row is not to be trusted ("" when it is)."""

    name: str
    family: str
    layout: str
    input_shape: str = ""
    params: int | None = None
    flops: int | None = None
    macs: int | None = None
    fwd_ms: float | None = None
    fwd_iqr_ms: float | None = None
    fwd_bwd_ms: float | None = None
    fwd_bwd_iqr_ms: float | None = None
    peak_mem_mb: float | None = None
    fwd_compiled_ms: float | None = None
    fwd_speedup: float | None = None
    fwd_bwd_compiled_ms: float | None = None
    fwd_bwd_speedup: float | None = None
    mul_ms: float | None = None
    floor_passes: float | None = None
    floor_ms: float | None = None
    floor_ratio: float | None = None
    rounds: int | None = None
    remeasured: int = 0
    flags: str = ""
    error: str = ""


@dataclass
class BenchConfig:
    """What ``visionblocks bench`` measures at: shape, device, dtype, and the timing's rounds."""

    batch: int = 8
    shape: tuple[int, ...] | None = None  # (C, H, W) override for nchw/conv/head blocks, or the models' input
    channels: int = 256
    size: tuple[int, int] = (56, 56)
    device: str = "cpu"
    dtype: str = "float32"
    warmup: int = 2
    repeats: int = 10
    min_time: float = 0.0  # seconds of timed calls per row at least (more rounds than repeats if needed)
    backward: bool = True
    compile: bool = False
    channels_last: bool = False
    max_spread: float = measure.DEFAULT_MAX_SPREAD
    remeasure: int = 2  # times a row whose forward is slower than its forward+backward is re-measured
    max_rounds: int = 2000
    model_size: tuple[int, int] | None = None  # (H, W) for models; None: 224x224
    model_test_size: bool = False  # models at their (smaller) test_input_size instead
    floors: bool = True


def build_for_bench(info: registry.BlockInfo, cfg: BenchConfig) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The block at the benchmark's realistic configuration, and its input."""
    ex = info.example
    realistic = info.layout in ("nchw", "conv", "head") and not info.fixed_size
    if realistic:
        c, h, w = cfg.shape if cfg.shape else (cfg.channels, *cfg.size)
        args = list(ex.args)
        kwargs = dict(ex.kwargs)
        if "channels" in kwargs or "in_channels" in kwargs:
            kwargs["channels" if "channels" in kwargs else "in_channels"] = c
        else:
            args[0] = c
        if info.layout == "conv":  # same width in and out, and stride 1, as inside a ResNet stage
            if "out_channels" in kwargs:
                kwargs["out_channels"] = c
            elif len(args) > 1:
                args[1] = c
            args, kwargs = _stride_one(info, args, kwargs)
        try:
            torch.manual_seed(0)
            m = info.cls(*args, **kwargs)
            return m, (torch.randn(cfg.batch, c, h, w),)
        except (ValueError, TypeError):
            pass  # a configuration the block's hyper-parameters do not allow: fall back to its example
    torch.manual_seed(0)
    m = info.build_example()
    return m, testing.make_inputs(info, batch=cfg.batch)


def _stride_one(info: registry.BlockInfo, args: list, kwargs: dict) -> tuple[list, dict]:
    """The arguments with ``stride=1`` where the block takes a stride (an example may downsample: conditional,
    dynamic, deformable convolutions, involution and MBConv are shown at stride 2), except an upsampler's
    (``transposed_conv``: its stride is what it is for)."""
    try:
        sig = inspect.signature(info.cls)
        bound = sig.bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return args, kwargs
    if "stride" not in sig.parameters or issubclass(info.cls, nn.ConvTranspose2d):
        return args, kwargs
    bound.arguments["stride"] = 1
    return list(bound.args), dict(bound.kwargs)


def build_model_for_bench(info: registry.ModelInfo, cfg: BenchConfig) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The model (``create_model``, 1000 classes) and a batch at ``cfg.model_size`` (default 224x224, or the
    model's ``test_input_size`` with ``cfg.model_test_size``); ``cfg.shape`` (C, H, W), when given, is the input
    instead (the model built with ``in_chans=C``), and then the other two must not be set."""
    if cfg.shape is not None:  # (C, H, W): C input channels (the model is built with in_chans=C), H x W
        if cfg.model_size or cfg.model_test_size:
            raise ValueError("shape gives the models' input size: do not combine it with model_size/model_test_size")
        chans, size = cfg.shape[0], tuple(cfg.shape[1:])
    else:
        chans, size = info.input_size[0], cfg.model_size or (224, 224)
        if cfg.model_test_size and info.test_input_size:
            size = tuple(info.test_input_size)
    torch.manual_seed(0)
    m = registry.create_model(info.name, **({"in_chans": chans} if chans != info.input_size[0] else {}))
    return m, (torch.randn(cfg.batch, chans, *size),)


def select_models(spec: str) -> list[str]:
    """Model names from ``--models``: comma-separated names and shell-style patterns (``'resnet*'``); an
    unknown name or a pattern that matches nothing is a ValueError."""
    names: list[str] = []
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        if any(c in item for c in "*?["):
            got = registry.list_models(item.lower())
            if not got:
                raise ValueError(f"--models {item!r} matches no model (see visionblocks list --models)")
        else:
            got = [registry.model_info(item).name]
        names += [n for n in got if n not in names]
    if not names:
        raise ValueError("--models: no model named")
    return names


def _to(t: torch.Tensor, cfg: BenchConfig) -> torch.Tensor:
    if not t.is_floating_point():
        return t.to(cfg.device)
    t = t.to(device=cfg.device, dtype=_DTYPES[cfg.dtype])
    return t.contiguous(memory_format=torch.channels_last) if cfg.channels_last and t.dim() == 4 else t


def _no_grad(fn, *inputs):
    def call():
        with torch.no_grad():
            fn(*inputs)
    return call


def _time(fns, reset, cfg: BenchConfig) -> measure.Timings:
    return measure.time_callables(fns, warmup=cfg.warmup, rounds=cfg.repeats, min_time=cfg.min_time, reset=reset,
                                  device=cfg.device, max_rounds=cfg.max_rounds)


_LABELS = {"fwd": "fwd", "fwd_bwd": "fwd+bwd", "fwd_compiled": "fwd compiled", "fwd_bwd_compiled": "fwd+bwd compiled",
           "mul": "x*s"}


def _measure(res: BenchResult, m: nn.Module, inputs: tuple, cfg: BenchConfig, passes: float | None) -> BenchResult:
    """Fill ``res`` with the counts and timings of ``m(*inputs)`` at ``cfg`` (see the module docstring)."""
    dtype = _DTYPES[cfg.dtype]
    m = m.to(device=cfg.device, dtype=dtype)
    if cfg.channels_last:  # the convolution weights (model.to(memory_format=...) refuses 5-D kernel banks)
        to_channels_last(m)
    inputs = tuple(_to(t, cfg) for t in inputs)
    m_eval = copy.deepcopy(m).eval()  # same weights; inference runs in eval mode
    m.train()
    res.input_shape = " ".join("x".join(map(str, t.shape)) for t in inputs)
    res.params = measure.count_params(m)
    res.flops = measure.count_flops(m_eval, inputs)
    res.macs = res.flops // 2

    fns = {"fwd": _no_grad(m_eval, *inputs)}
    reset = {}
    if cfg.compile:
        # a fresh dynamo cache per row: each row compiles on its own, whatever the rows before it left cached
        # (shared helper frames count toward dynamo's recompile limit)
        torch.compiler.reset()
        fns["fwd_compiled"] = _no_grad(torch.compile(m_eval), *inputs)
    step = None
    if cfg.backward and any(t.is_floating_point() for t in inputs):
        leaves = tuple(t.detach().requires_grad_(t.is_floating_point()) for t in inputs)
        fns["fwd_bwd"] = step = measure.TrainStep(m, leaves)
        reset["fwd_bwd"] = step.reset
        if cfg.compile:
            leaves_c = tuple(t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs)
            fns["fwd_bwd_compiled"] = step_c = measure.TrainStep(torch.compile(m), leaves_c, params_of=m)
            reset["fwd_bwd_compiled"] = step_c.reset
    if passes is not None:
        x = inputs[0]
        s = torch.rand(x.shape[0], x.shape[1], 1, 1, device=x.device, dtype=x.dtype)
        fns["mul"] = _no_grad(torch.mul, x, s)

    t = _time(fns, reset, cfg)
    flags = []
    if step is not None:
        while t.median("fwd") > t.median("fwd_bwd") and res.remeasured < cfg.remeasure:
            res.remeasured += 1
            t = _time(fns, reset, cfg)
        if t.median("fwd") > t.median("fwd_bwd"):
            flags.append(f"fwd>fwd+bwd after {res.remeasured} re-measurements")
    flags += [f"{_LABELS[n]} spread {t.spread(n):.0%}" for n in t.unstable(cfg.max_spread)]
    res.flags = "; ".join(flags)
    res.rounds = t.rounds
    res.fwd_ms, res.fwd_iqr_ms = t.median("fwd"), t.iqr("fwd")
    if step is not None:
        res.fwd_bwd_ms, res.fwd_bwd_iqr_ms = t.median("fwd_bwd"), t.iqr("fwd_bwd")
    if cfg.compile:
        res.fwd_compiled_ms, res.fwd_speedup = t.median("fwd_compiled"), t.ratio("fwd", "fwd_compiled")
        if step is not None:
            res.fwd_bwd_compiled_ms = t.median("fwd_bwd_compiled")
            res.fwd_bwd_speedup = t.ratio("fwd_bwd", "fwd_bwd_compiled")
    if passes is not None:
        res.mul_ms, res.floor_passes = t.median("mul"), passes
        res.floor_ms = passes * res.mul_ms
        res.floor_ratio = t.ratio("fwd", "mul") / passes
    if step is not None:
        step.reset()
        if cfg.device.startswith("cuda"):
            torch.cuda.synchronize(cfg.device)
            torch.cuda.reset_peak_memory_stats(cfg.device)
            base = torch.cuda.memory_allocated(cfg.device)
            step()
            torch.cuda.synchronize(cfg.device)
            res.peak_mem_mb = (torch.cuda.max_memory_allocated(cfg.device) - base) / 2**20
        else:
            res.peak_mem_mb = measure.activation_bytes(m, step.inputs) / 2**20
    return res


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


def bench_block(name: str, cfg: BenchConfig) -> BenchResult:
    """Measure block ``name`` at ``cfg``: eval forward and (with ``cfg.backward``) train forward+backward
    timed side by side (with ``cfg.compile`` their compiled copies too, and for a gate of
    :data:`GATE_PASSES` the multiply of its floor); an exception is recorded in ``error``, not raised."""
    info = registry.block_info(name)
    res = BenchResult(info.name, info.family, info.layout)
    try:
        m, inputs = build_for_bench(info, cfg)
        passes = GATE_PASSES[info.name].passes if cfg.floors and info.name in GATE_PASSES else None
        _measure(res, m, inputs, cfg, passes)
    except Exception as e:  # reported in the table; the run goes on
        res.error = _error(e)
    return res


def bench_model(name: str, cfg: BenchConfig) -> BenchResult:
    """Measure model ``name`` as :func:`bench_block` measures a block (batch ``cfg.batch``, 224x224 unless
    ``cfg.model_size``/``cfg.model_test_size`` say otherwise)."""
    info = registry.model_info(name)
    res = BenchResult(info.name, "model", "nchw")
    try:
        m, inputs = build_model_for_bench(info, cfg)
        _measure(res, m, inputs, cfg, None)
    except Exception as e:
        res.error = _error(e)
    return res


def bench_description(cfg: BenchConfig) -> str:
    """The machine and the benchmark's settings, one line."""
    return (f"{measure.machine_description(cfg.device)}; device {cfg.device}, dtype {cfg.dtype}"
            f"{', channels-last' if cfg.channels_last else ''}, batch {cfg.batch}, warm-up >= {cfg.warmup} rounds "
            f"until stable, repeats {cfg.repeats}, min time {cfg.min_time:g} s per row, flag spread > "
            f"{cfg.max_spread:.0%}, compile {cfg.compile}")


def _ms(v):
    return None if v is None else float(f"{v:.3g}") if v < 100 else round(v, 1)


# (field, header, formatter); the optional groups are shown only when a row has a value in them
_COLUMNS = [
    ("name", "name", None), ("family", "family", None), ("input_shape", "input", None),
    ("params", "params", measure.format_si), ("flops", "FLOPs", measure.format_si),
    ("macs", "MACs", measure.format_si),
    ("fwd_ms", "fwd ms", _ms), ("fwd_iqr_ms", "±IQR", _ms),
    ("fwd_bwd_ms", "fwd+bwd ms", _ms), ("fwd_bwd_iqr_ms", "±IQR", _ms), ("peak_mem_mb", "mem MB", _ms),
    ("fwd_compiled_ms", "fwd compiled ms", _ms), ("fwd_speedup", "fwd speed-up", lambda v: f"{v:.2f}x"),
    ("fwd_bwd_compiled_ms", "fwd+bwd compiled ms", _ms),
    ("fwd_bwd_speedup", "fwd+bwd speed-up", lambda v: f"{v:.2f}x"),
    ("mul_ms", "x*s ms", _ms), ("floor_passes", "passes", lambda v: f"{v:g}"), ("floor_ms", "floor ms", _ms),
    ("floor_ratio", "fwd/floor", lambda v: f"{v:.2f}x"),
    ("flags", "flags", None), ("error", "error", None),
]
_ALWAYS = {"name", "family", "input_shape", "params", "flops", "macs", "fwd_ms", "fwd_iqr_ms", "fwd_bwd_ms",
           "fwd_bwd_iqr_ms", "peak_mem_mb"}


def format_results(results: list[BenchResult], markdown: bool = False) -> str:
    """The results as an aligned text table (or Markdown), counts in K/M/G; a flagged row's name ends in
    ``*``; the compile, floor, flags and error columns appear when a row has them."""
    cols = [c for c in _COLUMNS if c[0] in _ALWAYS or any(getattr(r, c[0]) not in (None, "") for r in results)]
    rows = []
    for r in results:
        row = []
        for k, _, fmt in cols:
            v = getattr(r, k)
            if k == "name" and r.flags:
                v += " *"
            row.append(fmt(v) if fmt and v is not None else v)
        rows.append(row)
    return measure.format_table(rows, [h for _, h, _ in cols], markdown=markdown)


def _geomean(values: list[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def compile_summary(results: list[BenchResult]) -> str:
    """The geometric means of the ``torch.compile`` speed-ups (eager / compiled) over the measured rows that are
    not flagged (a flagged row's figures are noise, not facts: they are counted, not averaged)."""
    parts = []
    for field, what in (("fwd_speedup", "forward"), ("fwd_bwd_speedup", "forward+backward")):
        vals = [getattr(r, field) for r in results if getattr(r, field) and not r.flags]
        left = sum(1 for r in results if getattr(r, field) and r.flags)
        if vals or left:
            mean = f"{_geomean(vals):.2f}x" if vals else "none"
            parts.append(f"{what} {mean} over {len(vals)} rows" + (f" ({left} flagged left out)" if left else ""))
    return "torch.compile speed-up (eager / compiled, geometric mean): " + ("; ".join(parts) or "none measured")


def _legend(results: list[BenchResult], cfg: BenchConfig | None = None) -> list[str]:
    """The lines under the table (console and bench.md): units, what a flag means at the run's threshold, the
    floors, and with --compile the geometric means."""
    lines = ["params of the block (or model); FLOPs and MACs of one forward of the whole batch (flop_counter)"]
    if any(r.flags for r in results):
        limit = cfg.max_spread if cfg else measure.DEFAULT_MAX_SPREAD
        lines.append(f"* flagged: a figure's IQR/median is above {limit:.0%}"
                     " or the forward stayed slower than the forward+backward after re-measuring: noise, not a "
                     "fact; re-run on a quieter machine or with a larger --min-time")
    if any(r.floor_ms is not None for r in results):
        lines.append("floor = passes x (one broadcast multiply x*s of the same input, eval, same rounds); "
                     "passes argued in docs/benchmarks_notes.md")
    if any(r.fwd_speedup or r.fwd_bwd_speedup for r in results):
        lines.append(compile_summary(results))
    return lines


def _prepare_dirs(dirs: list[tuple[str, str]]) -> list[str]:
    """Create the directories ``[(what, path), ...]`` that do not exist and check that each can take a new file;
    returns the directories created.  On failure remove them and raise ValueError ``"<what>: <why>"`` (``what``
    names the option and its path)."""
    created: list[str] = []
    what, path = "", ""
    try:
        for what, path in dirs:
            missing, top = missing_dirs(path)
            if not os.path.isdir(top):
                raise ValueError(f"{what}: {top} exists and is not a directory")
            for d in reversed(missing):
                os.mkdir(d)
                created.append(d)
            with tempfile.TemporaryFile(dir=path):
                pass
    except (OSError, ValueError) as e:
        _remove_dirs(created)
        if isinstance(e, ValueError):
            raise
        raise ValueError(f"{what}: cannot write in {path} ({e.strerror or e})") from None
    return created


def _remove_dirs(created: list[str]) -> None:
    """Remove the directories :func:`_prepare_dirs` created (those still empty), deepest first."""
    for d in reversed(created):
        with contextlib.suppress(OSError):
            os.rmdir(d)


def _check_targets(files: list[tuple[str, str]]) -> None:
    """``[(what, path), ...]``: ValueError ``"<what>: <why>"`` when a file to be written is a directory or a file
    that cannot be replaced."""
    for what, path in files:
        if os.path.isdir(path):
            raise ValueError(f"{what}: {path} is a directory")
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise ValueError(f"{what}: {path} exists and is not writable")


def _output_files(results: list[BenchResult], out_dir: str, description: str,
                  notes: list[str]) -> list[tuple[str, Callable]]:
    """``bench.csv``, ``bench.json`` and ``bench.md`` under ``out_dir``, as ``(path, write)`` for write_all_or_none;
    ``notes``: the lines printed under the table (legend, compile summary, warnings), in the JSON and the MD."""
    def write_csv(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[fd.name for fd in fields(BenchResult)])
            w.writeheader()
            for r in results:
                w.writerow(asdict(r))

    def write_json(tmp):
        with open(tmp, "w") as f:
            json.dump({"machine": description, "notes": notes, "results": [asdict(r) for r in results]}, f, indent=1)

    def write_md(tmp):
        with open(tmp, "w") as f:
            legend = "".join(f"\n{line}\n" for line in notes)
            f.write(f"Machine: {description}\n\n{format_results(results, markdown=True)}\n{legend}")

    return [(os.path.join(out_dir, f"bench.{ext}"), fn)
            for ext, fn in (("csv", write_csv), ("json", write_json), ("md", write_md))]


def write_outputs(results: list[BenchResult], out_dir: str, description: str,
                  cfg: BenchConfig | None = None) -> list[str]:
    """Write ``bench.csv``, ``bench.json`` (raw numbers) and ``bench.md`` under ``out_dir`` (created if needed; a
    path that cannot be a writable directory is a ValueError); all three or none (an OSError while writing leaves
    the files there as they were).  ``cfg``: the run's settings (its flag threshold in the legend).  Returns their
    paths."""
    files = _output_files(results, out_dir, description, _legend(results, cfg))
    _check_targets([(f"out_dir {out_dir!r}", p) for p, _ in files])
    _prepare_dirs([(f"out_dir {out_dir!r}", out_dir)])
    return write_all_or_none(files)


_PLOT_X = {"params": ("params", "parameters"), "flops": ("flops", "FLOPs (flop_counter)"),
           "gflops": ("flops", "FLOPs (flop_counter)")}


def plot(results: list[BenchResult], path: str, x: str = "params") -> str:
    """Forward latency against parameters (or FLOPs), log-log; flagged rows drawn as grey crosses, out of the
    comparison, with a legend saying why.  Written to ``path`` (its directory created if needed) or not at all."""
    _check_targets([(f"plot path {path!r}", path)])
    _prepare_dirs([(f"plot path {path!r}", os.path.dirname(os.path.abspath(path)))])
    return write_all_or_none([_plot_file(results, path, x)])[0]


def _plot_file(results: list[BenchResult], path: str, x: str) -> tuple[str, Callable[[str], None]]:
    """The plot as ``(path, write)`` for write_all_or_none (the format from ``path``'s extension)."""
    return path, lambda tmp: _draw(results, x, tmp, os.path.splitext(path)[1][1:] or "png")


def _draw(results: list[BenchResult], x: str, path: str, fmt: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError as e:
        raise ValueError("--plot needs matplotlib: pip install 'visionblocks[plot]'") from e
    field, label = _PLOT_X[x]
    ok = [r for r in results if not r.error and r.fwd_ms and getattr(r, field)]
    # a log axis has no place for 0 (a gate with no matmul or convolution has 0 FLOPs): named under the plot
    zero = [r.name for r in results if not r.error and r.fwd_ms and not getattr(r, field)]
    fig, ax = plt.subplots(figsize=(10, 7))
    trusted = [r for r in ok if not r.flags]
    flagged = [r for r in ok if r.flags]
    if trusted:
        ax.scatter([getattr(r, field) for r in trusted], [r.fwd_ms for r in trusted], label="measured")
    if flagged:
        ax.scatter([getattr(r, field) for r in flagged], [r.fwd_ms for r in flagged], marker="x", color="0.6",
                   label="flagged: spread too wide or fwd > fwd+bwd (not a fact)")
    for r in ok:
        ax.annotate(r.name, (getattr(r, field), r.fwd_ms), fontsize=7, xytext=(3, 3), textcoords="offset points",
                    color="0.6" if r.flags else "black")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: measure.format_si(v)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.1g}"[0] in "25" else ""))
    ax.set_xlabel(label)
    ax.set_ylabel("forward latency (eval), median ms")
    ax.set_title(f"visionblocks bench: latency against {label.split(' ')[0]}")
    ax.grid(True, which="both", alpha=0.3)
    if ok:
        ax.legend(loc="best", fontsize=8)
    if zero:
        fig.text(0.01, 0.005, f"not drawn ({label.split(' ')[0]} 0, no place on a log axis): {', '.join(zero)}",
                 fontsize=7, color="0.4", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.03 if zero else 0, 1, 1))
    try:
        fig.savefig(path, dpi=120, format=fmt)
    finally:
        plt.close(fig)


def _progress(i: int, n: int, name: str, stream=sys.stderr) -> None:
    width = 30
    done = int(width * i / max(1, n))
    end = "\n" if i == n or not stream.isatty() else ""
    stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{n} {name:<32}{end}")
    stream.flush()


def _parse_shape(s: str) -> tuple[int, ...]:
    try:
        v = tuple(int(p) for p in s.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape must be C,H,W or B,C,H,W integers, got {s!r}") from None
    if len(v) not in (3, 4) or min(v) <= 0:
        raise argparse.ArgumentTypeError(f"--shape must be C,H,W or B,C,H,W positive integers, got {s!r}")
    return v


def _parse_size(s: str) -> tuple[int, int]:
    try:
        v = tuple(int(p) for p in s.replace("x", ",").split(","))
    except ValueError:
        v = ()
    if len(v) not in (1, 2) or min(v) <= 0:
        raise argparse.ArgumentTypeError(f"--size must be S or H,W positive integers, got {s!r}")
    return (v[0], v[0]) if len(v) == 1 else v


def _number(convert, ok, what: str):
    """An argparse ``type``: ``convert(s)`` that must satisfy ``ok``, else the message 'expected <what>'."""
    def parse(s: str):
        try:
            v = convert(s)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
        return v
    return parse


def _path(option: str):
    """An argparse ``type``: a path that is not empty (an empty one would silently write nothing)."""
    def parse(s: str) -> str:
        if not s.strip():
            raise argparse.ArgumentTypeError(f"expected a path, got {s!r}")
        return s
    parse.__name__ = option
    return parse


def _check_device(device: str) -> None:
    """ValueError unless ``device`` is the CPU or a CUDA device present here."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda") or (dev.type == "cpu" and dev.index not in (None, 0)):
        raise ValueError(f"--device must be cpu or cuda[:i], got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine "
                             f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")


def _check_plot_format(path: str) -> None:
    """ValueError, before any timing, when matplotlib is missing or does not write ``path``'s format."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'visionblocks[plot]'") from None
    ext = os.path.splitext(path)[1][1:].lower() or "png"
    formats = Figure().canvas.get_supported_filetypes()
    if ext not in formats:
        raise ValueError(f"--plot {path}: matplotlib does not write {ext!r} files; use one of "
                         f"{', '.join(sorted(formats))}")


_positive = _number(int, lambda v: v > 0, "a positive integer")
_non_negative = _number(float, lambda v: 0 <= v < float("inf"), "a non-negative number of seconds")
_fraction = _number(float, lambda v: 0 < v < float("inf"), "a positive number (IQR/median, e.g. 0.3)")


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure params, FLOPs, latency and memory of blocks (or models) side by side")
    p.add_argument("--family", choices=registry.FAMILIES, help="only this family")
    p.add_argument("--names", help="comma-separated block names")
    p.add_argument("--models", help="comma-separated model names or shell patterns, e.g. resnet50,'se_*' "
                                    "(models at batch 8, 3x224x224)")
    p.add_argument("--shape", type=_parse_shape,
                   help="C,H,W (or B,C,H,W) for nchw/conv/head blocks (default 256,56,56; the other blocks keep "
                        "their example shape, with a warning naming them); with --models the models' input, C their "
                        "in_chans (instead of --size)")
    p.add_argument("--size", type=_parse_size, help="H,W (or S) of the models' input (default 224)")
    p.add_argument("--test-size", action="store_true", help="models at their test_input_size (faster)")
    p.add_argument("--batch", type=_positive, help="images per forward (default 8; with a B,C,H,W --shape: B)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--dtype", choices=list(_DTYPES), default="float32")
    p.add_argument("--channels-last", action="store_true",
                   help="convolution weights and 4-D inputs in channels-last memory format")
    p.add_argument("--threads", type=_positive, help="torch.set_num_threads (CPU)")
    p.add_argument("--warmup", type=_positive, default=2, help="warm-up rounds at least (more until stable)")
    p.add_argument("--repeats", type=_positive, default=10, help="timed rounds per row at least")
    p.add_argument("--min-time", type=_non_negative, default=1.0,
                   help="seconds of timed calls per row at least (fast blocks get more than --repeats rounds, "
                        f"up to {BenchConfig.max_rounds})")
    p.add_argument("--max-spread", type=_fraction, default=measure.DEFAULT_MAX_SPREAD,
                   help="flag a row whose IQR/median is above this")
    p.add_argument("--no-backward", action="store_true", help="forward only")
    p.add_argument("--no-floors", action="store_true", help="do not time the gates' floor multiply")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd copies, side by side")
    p.add_argument("--out", type=_path("--out"), help="directory for bench.csv, bench.json and bench.md")
    p.add_argument("--plot", type=_path("--plot"),
                   help="PNG path (or .svg, .pdf: a format matplotlib writes): latency against parameters (or "
                        "--plot-x flops)")
    p.add_argument("--plot-x", choices=list(_PLOT_X), default="params")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    _check_device(args.device)
    if args.batch is not None and args.shape is not None and len(args.shape) == 4 and args.shape[0] != args.batch:
        raise ValueError(f"--batch {args.batch} and --shape {','.join(map(str, args.shape))} give two batch sizes: "
                         "give one")
    if args.models is not None and (args.names is not None or args.family):
        raise ValueError("--models cannot be combined with --names/--family: bench blocks and models in separate runs")
    if args.models is not None:
        names, bench_one = select_models(args.models), bench_model
        if args.shape is not None and (args.size or args.test_size):
            raise ValueError("--shape gives the models' input (C,H,W): do not combine it with --size/--test-size")
    else:
        bench_one = bench_block
        if args.size or args.test_size:
            raise ValueError("--size/--test-size set the models' input (with --models); blocks take --shape C,H,W")
        if args.names is not None:
            names = [n.strip() for n in args.names.split(",") if n.strip()]
            if not names:
                raise ValueError(f"--names {args.names!r} names no block (see visionblocks list)")
            # unknown names: ValueError -> exit 2; a block named twice (or by an alias) is measured once
            names = list(dict.fromkeys(registry.block_info(n).name for n in names))
            if args.family:
                names = [n for n in names if registry.block_info(n).family == args.family]
        else:
            names = registry.list_blocks(args.family)
    if not names:
        raise ValueError("no blocks selected")
    if args.plot:
        _check_plot_format(args.plot)
    # where the results go, checked (and created) before any timing
    dirs = ([(f"--out {args.out}", args.out)] if args.out else []) + \
           ([(f"--plot {args.plot}", os.path.dirname(args.plot) or ".")] if args.plot else [])
    targets = ([(f"--out {args.out}", os.path.join(args.out, f"bench.{ext}")) for ext in ("csv", "json", "md")]
               if args.out else []) + ([(f"--plot {args.plot}", args.plot)] if args.plot else [])
    _check_targets(targets)  # (a file whose directory is still to be made is not there yet)
    created = _prepare_dirs(dirs)
    try:
        return _run_bench(args, names, bench_one)
    except BaseException:  # an interrupted or failed run leaves no directory of its own behind
        _remove_dirs(created)
        raise


def _run_bench(args: argparse.Namespace, names: list[str], bench_one) -> int:
    """``cmd_bench`` once its options are checked and the output directories made: measure, print, write."""
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = args.shape
    batch = args.batch or 8
    if shape is not None and len(shape) == 4:
        batch, shape = shape[0], shape[1:]
    cfg = BenchConfig(batch=batch, shape=shape, device=args.device, dtype=args.dtype, warmup=args.warmup,
                      repeats=args.repeats, min_time=args.min_time, backward=not args.no_backward,
                      compile=args.compile, channels_last=args.channels_last, max_spread=args.max_spread,
                      model_size=args.size, model_test_size=args.test_size, floors=not args.no_floors)
    description = bench_description(cfg)
    print(f"Machine: {description}")
    print(f"glibc malloc: {measure.malloc_settings()}; torch threads: {torch.get_num_threads()}", flush=True)
    results = []
    for i, n in enumerate(names):
        if not args.quiet:
            _progress(i, len(names), n)
        results.append(bench_one(n, cfg))
    if not args.quiet:
        _progress(len(names), len(names), "done")
    print(format_results(results))
    notes = _legend(results, cfg)
    for line in notes:
        print(line)
    if args.shape is not None:
        want = "x".join(map(str, (batch, *shape)))
        other = [r.name for r in results if not r.error and r.input_shape != want]
        if other:
            warning = (f"warning: --shape {','.join(map(str, args.shape))} does not apply to {', '.join(other)} "
                       "(layout or arguments): measured at the example shape in the input column")
            print(f"visionblocks bench: {warning}", file=sys.stderr)
            notes.append(warning)
    files = (_output_files(results, args.out, description, notes) if args.out else []) + \
            ([_plot_file(results, args.plot, args.plot_x)] if args.plot else [])
    try:
        for p in write_all_or_none(files):
            print(f"wrote {p}")
    except OSError as e:  # disk full, the directory removed meanwhile...
        raise ValueError(f"cannot write {e.filename}: {e.strerror}") from None
    failed = sum(1 for r in results if r.error)
    flagged = sum(1 for r in results if r.flags and not r.error)
    what = "models" if args.models is not None else "blocks"
    print(f"{len(results) - failed} {what} measured, {failed} failed, {flagged} flagged")
    return 1 if failed and failed == len(results) else 0  # (nothing measured: a failed command for a script)
