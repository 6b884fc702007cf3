"""``visionblocks bench``: which block should I put in my network, and what does it cost?

For every registered block (or a family, or named blocks) at a realistic shape — batch 8 at a ResNet
stage (256 channels at 56x56) for ``nchw``, ``conv`` and ``head`` blocks, the example configuration with
batch 8 otherwise — it measures parameters, FLOPs and MACs (``torch.utils.flop_counter``: matmuls,
convolutions and attention; element-wise ops are not counted), forward and forward+backward latency
(median and interquartile range, timed side by side in paired rounds after warm-up by
:func:`visionblocks.measure.time_callables`) and peak memory (on CUDA the allocator's peak during
forward+backward; on CPU an estimate: the bytes of the output plus the activations autograd saves for
backward, unique storages counted once).  A block that fails is reported with its error and the run goes on.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn

from . import measure, registry, testing

__all__ = ["BenchResult", "BenchConfig", "build_for_bench", "bench_block", "bench_description", "format_results",
           "write_outputs", "plot", "add_bench_parser", "cmd_bench"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class BenchResult:
    """One row of the benchmark: a block's counts and timings at the benchmark's shape, or its error."""

    name: str
    family: str
    layout: str
    input_shape: str = ""
    params: int | None = None
    gflops: float | None = None
    gmacs: float | None = None
    fwd_ms: float | None = None
    fwd_iqr_ms: float | None = None
    fwd_bwd_ms: float | None = None
    fwd_bwd_iqr_ms: float | None = None
    peak_mem_mb: float | None = None
    error: str = ""


@dataclass
class BenchConfig:
    """What ``visionblocks bench`` measures at: shape, device, dtype, and the timing's rounds."""

    batch: int = 8
    shape: tuple[int, ...] | None = None  # (C, H, W) override for nchw/conv/head blocks
    channels: int = 256
    size: tuple[int, int] = (56, 56)
    device: str = "cpu"
    dtype: str = "float32"
    warmup: int = 2
    repeats: int = 10
    min_time: float = 0.0  # seconds of timed rounds per block at least (more rounds than repeats if needed)
    backward: bool = True
    compile: bool = False


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
        if info.layout == "conv":  # same width in and out, as inside a ResNet stage
            if "out_channels" in kwargs:
                kwargs["out_channels"] = c
            elif len(args) > 1:
                args[1] = c
        try:
            torch.manual_seed(0)
            m = info.cls(*args, **kwargs)
            return m, (torch.randn(cfg.batch, c, h, w),)
        except (ValueError, TypeError):
            pass  # a configuration the block's hyper-parameters do not allow: fall back to its example
    torch.manual_seed(0)
    m = info.build_example()
    return m, testing.make_inputs(info, batch=cfg.batch)


def bench_block(name: str, cfg: BenchConfig) -> BenchResult:
    """Measure block ``name`` at ``cfg``: forward and (with ``cfg.backward``) forward+backward timed side by
    side; an exception is recorded in ``error``, not raised."""
    info = registry.block_info(name)
    res = BenchResult(name, info.family, info.layout)
    try:
        m, inputs = build_for_bench(info, cfg)
        dtype = _DTYPES[cfg.dtype]
        m = m.to(device=cfg.device, dtype=dtype).train(cfg.backward)
        inputs = tuple(t.to(device=cfg.device, dtype=dtype) if t.is_floating_point() else t.to(cfg.device)
                       for t in inputs)
        res.input_shape = " ".join("x".join(map(str, t.shape)) for t in inputs)
        res.params = measure.count_params(m)
        res.gflops = measure.count_flops(m, inputs) / 1e9
        res.gmacs = res.gflops / 2
        run = torch.compile(m) if cfg.compile else m

        def fwd():
            with torch.no_grad():
                run(*inputs)

        fns, reset = {"fwd": fwd}, {}
        if cfg.backward and any(p.requires_grad for p in m.parameters()):
            leaves = tuple(t.detach().requires_grad_(t.is_floating_point()) for t in inputs)
            fns["fwd_bwd"] = step = measure.TrainStep(run, leaves, params_of=m)
            reset["fwd_bwd"] = step.reset
        if cfg.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t = measure.time_callables(fns, warmup=cfg.warmup, rounds=cfg.repeats, min_time=cfg.min_time, reset=reset,
                                   device=cfg.device)
        res.fwd_ms, res.fwd_iqr_ms = t.median("fwd"), t.iqr("fwd")
        if "fwd_bwd" in fns:
            res.fwd_bwd_ms, res.fwd_bwd_iqr_ms = t.median("fwd_bwd"), t.iqr("fwd_bwd")
            if cfg.device.startswith("cuda"):
                res.peak_mem_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
            else:
                res.peak_mem_mb = measure.activation_bytes(m, leaves) / 2**20
    except Exception as e:  # reported in the table; the run goes on
        res.error = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    return res


def bench_description(cfg: BenchConfig) -> str:
    """The machine and the benchmark's settings, one line."""
    return (f"{measure.machine_description(cfg.device)}; device {cfg.device}, dtype {cfg.dtype}, batch {cfg.batch}, "
            f"warm-up {cfg.warmup}, repeats {cfg.repeats}, min time {cfg.min_time:g} s, compile {cfg.compile}")


_COLUMNS = [("name", "name"), ("family", "family"), ("input_shape", "input"), ("params", "params"),
            ("gflops", "GFLOPs"), ("gmacs", "GMACs"), ("fwd_ms", "fwd ms"), ("fwd_iqr_ms", "±IQR"),
            ("fwd_bwd_ms", "fwd+bwd ms"), ("fwd_bwd_iqr_ms", "±IQR"), ("peak_mem_mb", "mem MB"), ("error", "error")]


def format_results(results: list[BenchResult], markdown: bool = False) -> str:
    """The results as an aligned text table (or Markdown)."""
    return measure.format_table([[getattr(r, k) for k, _ in _COLUMNS] for r in results], [h for _, h in _COLUMNS],
                                markdown=markdown)


def write_outputs(results: list[BenchResult], out_dir: str, description: str) -> list[str]:
    """Write ``bench.csv``, ``bench.json`` and ``bench.md`` under ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"bench.{ext}") for ext in ("csv", "json", "md")]
    with open(paths[0], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[fd.name for fd in fields(BenchResult)])
        w.writeheader()
        for r in results:
            w.writerow(asdict(r))
    with open(paths[1], "w") as f:
        json.dump({"machine": description, "results": [asdict(r) for r in results]}, f, indent=1)
    with open(paths[2], "w") as f:
        f.write(f"Machine: {description}\n\n{format_results(results, markdown=True)}\n")
    return paths


def plot(results: list[BenchResult], path: str, x: str = "params") -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ValueError("--plot needs matplotlib: pip install 'visionblocks[plot]'") from e
    ok = [r for r in results if not r.error and r.fwd_ms and getattr(r, x)]
    fig, ax = plt.subplots(figsize=(10, 7))
    for r in ok:
        ax.scatter(getattr(r, x), r.fwd_ms)
        ax.annotate(r.name, (getattr(r, x), r.fwd_ms), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel({"params": "parameters", "gflops": "GFLOPs (flop_counter)"}[x])
    ax.set_ylabel("forward latency, median ms")
    ax.set_title("visionblocks bench: latency against " + ("parameters" if x == "params" else "FLOPs"))
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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


_positive = _number(int, lambda v: v > 0, "a positive integer")
_non_negative = _number(float, lambda v: 0 <= v < float("inf"), "a non-negative number of seconds")


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure params, FLOPs, latency and memory of blocks side by side")
    p.add_argument("--family", choices=registry.FAMILIES, help="only this family")
    p.add_argument("--names", help="comma-separated block names")
    p.add_argument("--shape", type=_parse_shape, help="C,H,W (or B,C,H,W) for nchw/conv/head blocks (default 256,56,56)")
    p.add_argument("--batch", type=_positive, default=8)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--dtype", choices=list(_DTYPES), default="float32")
    p.add_argument("--threads", type=_positive, help="torch.set_num_threads (CPU)")
    p.add_argument("--warmup", type=_positive, default=2)
    p.add_argument("--repeats", type=_positive, default=10, help="timed rounds per block at least")
    p.add_argument("--min-time", type=_non_negative, default=0.0,
                   help="seconds of timed rounds per block at least (fast blocks get more than --repeats rounds)")
    p.add_argument("--no-backward", action="store_true", help="forward only")
    p.add_argument("--compile", action="store_true", help="time torch.compile'd blocks")
    p.add_argument("--out", help="directory for bench.csv, bench.json and bench.md")
    p.add_argument("--plot", help="PNG path: latency against parameters (or --plot-x gflops)")
    p.add_argument("--plot-x", choices=["params", "gflops"], default="params")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        raise ValueError(f"--device must be cpu or cuda[:i], got {args.device!r}")
    if args.names:
        names = [n.strip() for n in args.names.split(",") if n.strip()]
        for n in names:
            registry.block_info(n)  # unknown names: ValueError -> exit 2
        if args.family:
            names = [n for n in names if registry.block_info(n).family == args.family]
    else:
        names = registry.list_blocks(args.family)
    if not names:
        raise ValueError("no blocks selected")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install 'visionblocks[plot]'") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = args.shape
    batch = args.batch
    if shape is not None and len(shape) == 4:
        batch, shape = shape[0], shape[1:]
    cfg = BenchConfig(batch=batch, shape=shape, device=args.device, dtype=args.dtype, warmup=args.warmup,
                      repeats=args.repeats, min_time=args.min_time, backward=not args.no_backward,
                      compile=args.compile)
    description = bench_description(cfg)
    results = []
    for i, n in enumerate(names):
        if not args.quiet:
            _progress(i, len(names), n)
        results.append(bench_block(n, cfg))
    if not args.quiet:
        _progress(len(names), len(names), "done")
    print(f"Machine: {description}")
    print(format_results(results))
    if args.out:
        for p in write_outputs(results, args.out, description):
            print(f"wrote {p}")
    if args.plot:
        print(f"wrote {plot(results, args.plot, args.plot_x)}")
    failed = sum(1 for r in results if r.error)
    print(f"{len(results) - failed} blocks measured, {failed} failed")
    return 0
