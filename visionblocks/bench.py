"""``visionblocks bench``: which block should I put in my network, and what does it cost?

For every registered block (or a family, or named blocks) at a realistic shape — batch 8 at a ResNet
stage (256 channels at 56x56) for ``nchw``, ``conv`` and ``head`` blocks, the example configuration with
batch 8 otherwise — it measures parameters, FLOPs and MACs (``torch.utils.flop_counter``: matmuls,
convolutions and attention; element-wise ops are not counted), forward and forward+backward latency
(median and interquartile range of repeated runs after warm-up) and peak memory (on CUDA the allocator's
peak during forward+backward; on CPU an estimate: the bytes of the output plus the activations autograd
saves for backward, unique storages counted once).  A block that fails is reported with its error and
the run goes on.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from . import registry, testing

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class BenchResult:
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
    batch: int = 8
    shape: tuple[int, ...] | None = None  # (C, H, W) override for nchw/conv/head blocks
    channels: int = 256
    size: tuple[int, int] = (56, 56)
    device: str = "cpu"
    dtype: str = "float32"
    warmup: int = 2
    repeats: int = 10
    backward: bool = True
    compile: bool = False
    extra: dict = field(default_factory=dict)


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


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, warmup: int, repeats: int, device: str) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return statistics.median(times), q[2] - q[0]


def _saved_bytes(m: nn.Module, inputs: tuple) -> int:
    """CPU memory estimate: output bytes plus activations saved for backward (unique storages)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        except Exception:
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = testing.flatten_outputs(m(*inputs))
    out_bytes = sum(o.numel() * o.element_size() for o in out)
    return sum(seen.values()) + out_bytes


def bench_block(name: str, cfg: BenchConfig) -> BenchResult:
    info = registry.block_info(name)
    res = BenchResult(name, info.family, info.layout)
    try:
        m, inputs = build_for_bench(info, cfg)
        dtype = _DTYPES[cfg.dtype]
        m = m.to(device=cfg.device, dtype=dtype).train(cfg.backward)
        inputs = tuple(t.to(device=cfg.device, dtype=dtype) if t.is_floating_point() else t.to(cfg.device)
                       for t in inputs)
        res.input_shape = " ".join("x".join(map(str, t.shape)) for t in inputs)
        res.params = sum(p.numel() for p in m.parameters())
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            m(*inputs)
        res.gflops = fc.get_total_flops() / 1e9
        res.gmacs = res.gflops / 2
        fwd_mod = torch.compile(m) if cfg.compile else m

        def fwd():
            with torch.no_grad():
                fwd_mod(*inputs)

        res.fwd_ms, res.fwd_iqr_ms = _time(fwd, cfg.warmup, cfg.repeats, cfg.device)
        if cfg.backward and any(p.requires_grad for p in m.parameters()):
            leaf = tuple(t.detach().requires_grad_(t.is_floating_point()) for t in inputs)

            def fwd_bwd():
                outs = testing.flatten_outputs(fwd_mod(*leaf))
                sum(o.float().sum() for o in outs).backward()
                m.zero_grad(set_to_none=True)

            if cfg.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            res.fwd_bwd_ms, res.fwd_bwd_iqr_ms = _time(fwd_bwd, cfg.warmup, cfg.repeats, cfg.device)
            if cfg.device.startswith("cuda"):
                res.peak_mem_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
            else:
                res.peak_mem_mb = _saved_bytes(m, leaf) / 2**20
    except Exception as e:  # reported in the table; the run goes on
        res.error = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    return res


def machine_description(cfg: BenchConfig) -> str:
    malloc = {k: os.environ[k] for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_") if k in os.environ}
    dev = torch.cuda.get_device_name() if cfg.device.startswith("cuda") else (platform.processor() or platform.machine())
    return (f"torch {torch.__version__}, device {cfg.device} ({dev}), {torch.get_num_threads()} threads, "
            f"{os.cpu_count()} CPUs, dtype {cfg.dtype}, batch {cfg.batch}, warm-up {cfg.warmup}, repeats "
            f"{cfg.repeats}, compile {cfg.compile}; glibc MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ "
            + (f"raised: {malloc}" if malloc else "not raised"))


_COLUMNS = [("name", "name"), ("family", "family"), ("input_shape", "input"), ("params", "params"),
            ("gflops", "GFLOPs"), ("gmacs", "GMACs"), ("fwd_ms", "fwd ms"), ("fwd_iqr_ms", "±IQR"),
            ("fwd_bwd_ms", "fwd+bwd ms"), ("fwd_bwd_iqr_ms", "±IQR"), ("peak_mem_mb", "mem MB"), ("error", "error")]


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def format_table(results: list[BenchResult], markdown: bool = False) -> str:
    rows = [[_cell(getattr(r, k)) for k, _ in _COLUMNS] for r in results]
    header = [h for _, h in _COLUMNS]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def write_outputs(results: list[BenchResult], out_dir: str, description: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"bench.{ext}") for ext in ("csv", "json", "md")]
    with open(paths[0], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(asdict(results[0]).keys()) if results else ["name"])
        w.writeheader()
        for r in results:
            w.writerow(asdict(r))
    with open(paths[1], "w") as f:
        json.dump({"machine": description, "results": [asdict(r) for r in results]}, f, indent=1)
    with open(paths[2], "w") as f:
        f.write(f"Machine: {description}\n\n{format_table(results, markdown=True)}\n")
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


def _positive(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


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
    p.add_argument("--repeats", type=_positive, default=10)
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
                      repeats=args.repeats, backward=not args.no_backward, compile=args.compile)
    description = machine_description(cfg)
    results = []
    for i, n in enumerate(names):
        if not args.quiet:
            _progress(i, len(names), n)
        results.append(bench_block(n, cfg))
    if not args.quiet:
        _progress(len(names), len(names), "done")
    print(f"Machine: {description}")
    print(format_table(results))
    if args.out:
        for p in write_outputs(results, args.out, description):
            print(f"wrote {p}")
    if args.plot:
        print(f"wrote {plot(results, args.plot, args.plot_x)}")
    failed = sum(1 for r in results if r.error)
    print(f"{len(results) - failed} blocks measured, {failed} failed")
    return 0
