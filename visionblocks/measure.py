"""Measuring blocks and models: parameters, FLOPs/MACs, latency, memory, the machine, and tables of results.

The one place for every number ``visionblocks bench``, ``visionblocks info``, ``docs_models`` and the scripts in
``benchmarks/`` report::

    from visionblocks import measure
    measure.count_macs("resnet50")                        # (params, MACs) at the paper's input size
    step = measure.TrainStep(block, (x,))                 # forward + backward with a fixed output gradient
    t = measure.time_callables({"ours": step, "peer": peer_step}, reset={"ours": step.reset, ...},
                               rounds=15, min_time=3.0)
    t.median("ours"), t.iqr("ours"), t.spread("ours"), t.unstable(), t.ratio("peer", "ours")
    measure.format_si(8192)                               # '8.19 K'

**Timing** (:func:`time_callables`, the one timing routine of the bench, ``benchmarks/`` and ``visionblocks
compare``) runs every callable once per round, in a rotating order (with two, the order flips every round),
after warm-up rounds that go on until the round's time is stable; it runs at least ``rounds`` rounds and until
the timed calls add up to ``min_time`` seconds, since the median of a 1 ms block swings by
tens of percent between runs of a few dozen rounds on a shared machine.  It reports medians and interquartile
ranges; a figure whose relative spread (IQR / median, :meth:`Timings.spread`) is above
:data:`DEFAULT_MAX_SPREAD` is too noisy to be reported as a fact (:meth:`Timings.unstable`).  The calls of one
round are adjacent in time, so the *paired* ratio (the median over the rounds of the per-round ratio,
:meth:`Timings.ratio`) sees the same machine load on both sides, which the ratio of two medians does not on a
shared machine whose load changes within a measurement.

**FLOPs** come from ``torch.utils.flop_counter`` (matmuls, convolutions and attention; element-wise ops are
not counted), which counts 2 FLOPs per multiply-accumulate: MACs = FLOPs / 2.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from .registry import ModelInfo, model_info

__all__ = [
    "count_params", "count_flops", "count_macs", "flatten_outputs", "activation_bytes", "TrainStep",
    "Timings", "time_callables", "DEFAULT_MAX_SPREAD", "machine_description", "malloc_settings", "format_si",
    "format_cell", "format_table",
]


# ------------------------------------------------------------------------------------ parameters and FLOPs
def count_params(module: nn.Module) -> int:
    """Number of parameters (shared ones once, as ``module.parameters()`` yields them)."""
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, inputs: tuple) -> int:
    """FLOPs of one forward of ``module(*inputs)`` (no grad), as ``torch.utils.flop_counter`` counts them."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        module(*inputs)
    return fc.get_total_flops()


def count_macs(entry: str | ModelInfo, size: tuple[int, int] | None = None, **kwargs: Any) -> tuple[int, int]:
    """(params, MACs) of model ``entry`` (a name or a ``ModelInfo``) at ``size`` (default: its input size),
    counted on the meta device, so nothing is allocated.  With no ``kwargs``, the form the paper counts is
    built (``ModelInfo.count_kwargs``)."""
    info = model_info(entry) if isinstance(entry, str) else entry
    kwargs = kwargs or dict(info.count_kwargs)
    size = size or tuple(info.input_size[1:])
    with torch.device("meta"):
        m = info.fn(**{"num_classes": 1000, "in_chans": 3, **kwargs}).eval()  # as create_model builds it
        x = torch.empty(1, info.input_size[0], *size)
    return count_params(m), count_flops(m, (x,)) // 2


# ------------------------------------------------------------------------------------ outputs and memory
def flatten_outputs(out: Any) -> list[torch.Tensor]:
    """A module's output (a tensor, or nested tuples/lists of them) as a flat list of tensors."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flatten_outputs(o)]
    raise TypeError(f"a block must return tensors (or tuples of them), got {type(out).__name__}")


def activation_bytes(module: nn.Module, inputs: tuple) -> int:
    """CPU memory estimate of a training step: the bytes of the output plus the activations autograd saves
    for backward (unique storages counted once).  On CUDA, read the allocator's peak instead."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        except Exception:  # tensors without a storage (e.g. some tensor subclasses) are not counted
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = flatten_outputs(module(*inputs))
    return sum(seen.values()) + sum(o.numel() * o.element_size() for o in out)


# ------------------------------------------------------------------------------------ timing
class TrainStep:
    """One forward + backward of ``module(*inputs)``, the step a block costs inside a network in training.

    Backward uses a dense random output gradient, drawn at the first call and kept, not
    ``out.sum().backward()``: the gradient of a sum is an expanded scalar (all strides 0), which no real
    network feeds back, and which sends some kernels down slow paths (e.g. the batched matmuls of an
    attention's backward run one matrix at a time on it).  Inputs that require grad (leaves) receive theirs,
    as a block's input does inside a network.  :meth:`reset` clears the gradients of ``params_of`` (default
    ``module``) and of the inputs; pass it to :func:`time_callables` so that it runs outside the timed call.
    """

    def __init__(self, module: nn.Module, inputs: tuple, params_of: nn.Module | None = None):
        self.module, self.inputs = module, tuple(inputs)
        self.params_of = params_of if params_of is not None else module
        self.grads: tuple[torch.Tensor, ...] | None = None

    def __call__(self) -> None:
        outs = [o for o in flatten_outputs(self.module(*self.inputs)) if o.requires_grad]
        if self.grads is None:
            self.grads = tuple(torch.randn_like(o) for o in outs)
        torch.autograd.backward(outs, self.grads)

    def reset(self) -> None:
        self.params_of.zero_grad(set_to_none=True)
        for t in self.inputs:
            t.grad = None


DEFAULT_MAX_SPREAD = 0.3
"""Relative spread (IQR / median) above which a figure is flagged as too noisy to trust."""


@dataclass(frozen=True)
class Timings:
    """Per-call times in milliseconds of each timed callable, ``ms[name][i]`` taken in round ``i``, and the
    number of warm-up rounds that ran before them."""

    ms: dict[str, list[float]]
    warmup: int = 0

    @property
    def rounds(self) -> int:
        return len(next(iter(self.ms.values()), []))

    def median(self, name: str) -> float:
        return statistics.median(self.ms[name])

    def iqr(self, name: str) -> float:
        """Interquartile range (0 with a single round): the quartiles interpolated between the times (numpy's
        default), so never wider than their range (the "exclusive" rule extrapolates beyond it at a few rounds)."""
        t = self.ms[name]
        if len(t) < 2:
            return 0.0
        q = statistics.quantiles(t, n=4, method="inclusive")
        return q[2] - q[0]

    def spread(self, name: str) -> float:
        """Relative spread of ``name``'s times: IQR / median (0 for a zero median)."""
        med = self.median(name)
        return self.iqr(name) / med if med > 0 else 0.0

    def unstable(self, max_spread: float = DEFAULT_MAX_SPREAD) -> list[str]:
        """The callables whose relative spread is above ``max_spread``: figures too noisy to report as facts."""
        return [n for n in self.ms if self.spread(n) > max_spread]

    def ratio(self, num: str, den: str) -> float:
        """Median over the rounds of ``num``'s time / ``den``'s time in the same round (> 1: ``den`` is faster; a
        round where ``den`` took no measurable time counts as infinitely slower for ``num``, or 1 if both did not)."""
        return statistics.median(a / b if b > 0 else (math.inf if a > 0 else 1.0)
                                 for a, b in zip(self.ms[num], self.ms[den]))


def _stable(totals: Sequence[float], k: int, band: float) -> bool:
    """Whether the last ``k`` round times are within ``band`` (relative) of each other, or within 20 us (the
    jitter of a call, for callables of a few microseconds)."""
    if len(totals) < k:
        return False
    last = totals[-k:]
    return max(last) <= (1 + band) * min(last) or max(last) - min(last) <= 2e-5


def time_callables(fns: Mapping[str, Callable[[], Any]], *, warmup: int = 2, rounds: int = 10,
                   min_time: float = 0.0, max_rounds: int = 2000,
                   reset: Mapping[str, Callable[[], Any]] | None = None,
                   device: str | torch.device = "cpu", max_warmup: int = 20,
                   max_warmup_time: float | None = None, stable_rounds: int = 3, stable_band: float = 0.2,
                   clock: Callable[[], float] | None = None) -> Timings:
    """Time the callables ``fns`` side by side in paired rounds (see the module docstring).

    **Warm-up until stable**: at least ``warmup`` untimed rounds, then more until the totals of the last
    ``stable_rounds`` rounds are within ``stable_band`` of each other (caches, allocator, oneDNN primitives and
    ``torch.compile`` settled), at most ``max_warmup`` rounds or ``max_warmup_time`` seconds (default:
    ``max(1, 2 * min_time)``).  **Timed rounds**: at least ``rounds``, and until the timed calls of all the
    callables add up to ``min_time`` seconds (so the figures of one measurement rest on that much of the
    machine's time, whatever their cost: a 1 ms block gets ~1000 rounds at ``min_time=1``), at most
    ``max_rounds``.  ``reset[name]`` runs before each call of
    ``fns[name]``, outside the timed region (e.g. :meth:`TrainStep.reset`).  ``warmup=0``: no warm-up at all.

    On a CUDA ``device`` each call is timed with CUDA events after a synchronisation (the GPU's time, not the
    launch's).  ``clock`` (seconds, monotonic) replaces ``time.perf_counter`` (and the CUDA events): tests pass
    a fake clock that the callables advance, to feed the routine known costs and disturbances.
    """
    if not fns:
        raise ValueError("time_callables needs at least one callable")
    if rounds < 1 or warmup < 0 or max_rounds < 1:
        raise ValueError(f"rounds and max_rounds must be >= 1 and warmup >= 0, got rounds={rounds}, "
                         f"max_rounds={max_rounds}, warmup={warmup}")
    if not (0 <= min_time < math.inf and 0 <= stable_band < math.inf) or stable_rounds < 1:
        raise ValueError(f"min_time and stable_band must be finite numbers >= 0 and stable_rounds >= 1, got "
                         f"min_time={min_time}, stable_band={stable_band}, stable_rounds={stable_rounds}")
    try:
        cuda = torch.device(device).type == "cuda" and clock is None
    except RuntimeError as e:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from e
    names, reset = list(fns), dict(reset or {})
    clock = clock or time.perf_counter
    max_warmup = max(max_warmup, warmup)
    max_warmup_time = max(1.0, 2 * min_time) if max_warmup_time is None else max_warmup_time

    def call(name: str) -> float:
        if name in reset:
            reset[name]()
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fns[name]()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = clock()
        fns[name]()
        return clock() - t0

    totals: list[float] = []
    while len(totals) < warmup or (
            warmup > 0 and len(totals) < max_warmup and sum(totals) < max_warmup_time
            and not _stable(totals, stable_rounds, stable_band)):
        totals.append(sum(call(n) for n in names))
    ms: dict[str, list[float]] = {n: [] for n in names}
    spent = dict.fromkeys(names, 0.0)
    r = 0
    while r < max_rounds and (r < rounds or sum(spent.values()) < min_time):
        k = r % len(names)
        for name in names[k:] + names[:k]:  # rotate who goes first
            dt = call(name)
            spent[name] += dt
            ms[name].append(dt * 1e3)
        r += 1
    return Timings(ms, warmup=len(totals))


# ------------------------------------------------------------------------------------ the machine
_MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def malloc_settings() -> str:
    """Whether glibc's ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` are set, e.g.
    ``'MALLOC_MMAP_THRESHOLD_=1000000000, MALLOC_TRIM_THRESHOLD_ unset'``.  Unset, every fresh large temporary
    is mmap-ed and page-faulted on each call, which can decide the time of a memory-bound block."""
    return ", ".join(f"{k}={os.environ[k]}" if k in os.environ else f"{k} unset" for k in _MALLOC_VARS)


def machine_description(device: str | torch.device = "cpu") -> str:
    """One line saying where numbers were measured: CPU (and GPU), torch, threads, load, glibc malloc."""
    dev = torch.device(device)
    gpu = ""
    if dev.type == "cuda":
        gpu = f", GPU {torch.cuda.get_device_name(dev)} (CUDA {torch.version.cuda})"
    load = f"; load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    raised = any(k in os.environ for k in _MALLOC_VARS)
    malloc = f"raised: {malloc_settings()}" if raised else "not raised (glibc defaults)"
    return (f"{_cpu_model()} ({platform.machine()}, {os.cpu_count()} CPUs visible){gpu}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, Python {platform.python_version()}{load}; glibc "
            f"{'/'.join(_MALLOC_VARS)} {malloc}")


# ------------------------------------------------------------------------------------ tables
_SI = ((1.0, ""), (1e3, " K"), (1e6, " M"), (1e9, " G"), (1e12, " T"))


def format_si(v: float | int | None, digits: int = 3) -> str:
    """A count in units a person reads at a glance: ``8192`` -> ``'8.19 K'``, ``1.234e9`` -> ``'1.23 G'``,
    ``512`` -> ``'512'``; ``digits`` significant digits; ``'—'`` for ``None``."""
    if v is None:
        return "—"
    if isinstance(v, int) and abs(v) < 1000:
        return str(v)
    i = 0
    while i + 1 < len(_SI) and abs(v) >= _SI[i + 1][0]:
        i += 1
    x = v / _SI[i][0]
    if abs(float(f"{x:.{digits}g}")) >= 1000 and i + 1 < len(_SI):  # 999.7 K rounds to 1000 K: say 1 M
        i += 1
        x = v / _SI[i][0]
    return (f"{x:.0f}" if abs(x) >= 10 ** digits else f"{x:.{digits}g}") + _SI[i][1]


def format_cell(v: Any) -> str:
    """A table cell: '—' for a missing value, 4 significant digits for floats, thousands separators for ints."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str], markdown: bool = False) -> str:
    """Rows under ``header``, as aligned plain text or as a Markdown table (a '|' in a cell becomes '/')."""
    cells = [[format_cell(v) for v in r] for r in rows]
    header = [str(h) for h in header]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in cells])
    widths = [max(len(r[i]) for r in cells + [header]) for i in range(len(header))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in cells])
