"""``visionblocks compare``: train variants of a model under the identical recipe and seed(s), then put accuracy beside
cost.

Each variant (an ``--attn`` value; ``none`` is the plain model) and seed trains in ``OUT/<variant>/seed<k>/``; a run
that is complete is read back, an unfinished one is resumed, so an interrupted comparison continues where it
stopped, one run at a time.  Then every variant's cost is measured the way ``visionblocks bench`` measures blocks
(:mod:`visionblocks.measure`): parameters, MACs of one image, the latency of a training step (forward + backward) and
of inference on a batch, timed side by side in paired rounds, and the memory of a training step (the CUDA
allocator's peak on a GPU; on a CPU the activations autograd keeps plus the weights, an estimate).  Results:
``OUT/compare.{csv,json,md}`` and ``OUT/compare.png`` (top-1 against inference latency, the Pareto front marked).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import statistics
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from . import checkpoint as ckpt
from .engine import CHECKPOINT, RunResult, TrainConfig, build_model, config_for_resume, train
from .errors import TrainError
from ..layers import write_all_or_none

__all__ = ["CompareResult", "compare", "measure_costs", "COLUMNS"]

COLUMNS = ("variant", "top1", "top1_std", "top5", "params_m", "macs_m", "train_ms", "infer_ms", "mem_mb", "seeds")


@dataclass
class CompareResult:
    rows: list[dict[str, Any]]
    runs: dict[str, list[RunResult]]
    table: str
    files: list[str]
    interrupted: bool = False  # a run was interrupted (SIGINT/SIGTERM): the comparison stopped there, resumable


def _variant_config(base: TrainConfig, variant: str, seed: int, out: str) -> TrainConfig:
    attn = None if variant.lower() == "none" else variant
    return dataclasses.replace(base, attn=attn, seed=seed, out=os.path.join(out, variant, f"seed{seed}"),
                               model_kwargs=dict(base.model_kwargs))


def _run_one(cfg: TrainConfig, stream) -> RunResult:
    path = os.path.join(cfg.out, CHECKPOINT)
    if not os.path.exists(path):
        return train(cfg, stream=stream)
    rcfg = config_for_resume(cfg.out, dataclasses.asdict(cfg))
    ck = ckpt.load_checkpoint(path)
    if ck["epoch"] >= rcfg.epochs and ck["step_in_epoch"] == 0:
        print(f"{cfg.out}: complete, read back", file=stream)
        return RunResult(cfg.out, ck["epoch"], list(ck["history"]), False)
    print(f"{cfg.out}: resuming at epoch {ck['epoch'] + 1}", file=stream)
    return train(rcfg, resume=True, stream=stream)


def measure_costs(models: dict[str, torch.nn.Module], input_shape: tuple[int, int, int], batch: int = 16,
                  rounds: int = 5, device: str | torch.device = "cpu") -> dict[str, dict[str, float]]:
    """Params (M), MACs of one image (M), train-step and inference latency of a batch (ms, paired rounds over all
    the models) and training memory (MB) of each model."""
    from visionblocks import measure
    dev = torch.device(device)
    out: dict[str, dict[str, float]] = {}
    fns, reset = {}, {}
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *input_shape, generator=gen).to(dev)
    for name, m in models.items():
        m = m.to(dev)
        params = measure.count_params(m)
        macs = measure.count_flops(m.eval(), (x[:1],)) // 2
        if dev.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
            step = measure.TrainStep(m.train(), (x,))
            step()
            torch.cuda.synchronize()
            mem = torch.cuda.max_memory_allocated(dev) - base + sum(p.numel() * p.element_size() for p in m.parameters())
            m.zero_grad(set_to_none=True)
        else:
            mem = measure.activation_bytes(m.train(), (x,)) + sum(p.numel() * p.element_size() for p in m.parameters())
        out[name] = {"params_m": params / 1e6, "macs_m": macs / 1e6, "mem_mb": mem / 2**20}
        step = measure.TrainStep(m, (x,))
        fns[f"{name}/train"], reset[f"{name}/train"] = step, step.reset
        fns[f"{name}/infer"] = _Infer(m, x)
    t = measure.time_callables(fns, warmup=1, rounds=rounds, reset=reset, device=dev)
    for name in models:
        out[name]["train_ms"] = t.median(f"{name}/train")
        out[name]["infer_ms"] = t.median(f"{name}/infer")
    return out


class _Infer:
    """Inference on a batch (eval mode, no autograd); the training step sets train mode back for itself."""

    def __init__(self, m: torch.nn.Module, x: torch.Tensor):
        self.m, self.x = m, x

    def __call__(self) -> None:
        was = self.m.training
        self.m.eval()
        with torch.no_grad():
            self.m(self.x)
        self.m.train(was)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def compare(base: TrainConfig, variants: Sequence[str], seeds: Sequence[int], out: str, *, bench_batch: int = 16,
            bench_rounds: int = 5, stream=None) -> CompareResult:
    """Train every variant under ``base``'s recipe with every seed (resuming unfinished runs), measure the costs, and
    write ``out/compare.{csv,json,md,png}``."""
    from visionblocks.measure import format_table, machine_description
    stream = stream or sys.stderr
    if not variants:
        raise TrainError("--attn: no variants to compare")
    if len(set(variants)) != len(variants):
        raise TrainError(f"--attn lists a variant twice: {', '.join(variants)}")
    if not seeds:
        raise TrainError("--seeds: no seeds")
    if len(set(seeds)) != len(seeds):
        raise TrainError(f"--seeds lists a seed twice: {', '.join(map(str, seeds))}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainError("compare runs on one process; train single variants under torchrun")
    base = base.resolved()
    for s in seeds:  # each seed as the engine checks --seed
        dataclasses.replace(base, seed=s).resolved()
    if base.stop_after_epoch is not None:
        raise TrainError("compare trains every run to the end (no --stop-after-epoch)")
    # every variant must build before any training starts (a bad name fails in a second, not after a run)
    from .data import load_data
    from visionblocks.models import resolve_data_config
    _, _, info = load_data(base.data, resolve_data_config(base.model), input_size=base.input_size,
                           in_chans=base.in_chans, seed=0, hflip=base.hflip, limit=base.limit)
    models = {}
    for v in variants:
        try:
            models[v] = build_model(_variant_config(base, v, seeds[0], out), info.num_classes, info.in_chans,
                                    info.input_size)
        except ValueError as e:  # (the variant named: "channels (64) must be divisible ..." alone said none)
            raise TrainError(f"variant {v!r} does not build, so nothing was trained (every variant is built "
                             f"first): {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    runs: dict[str, list[RunResult]] = {}
    for v in variants:
        for s in seeds:
            print(f"== {v} (seed {s})", file=stream)
            r = _run_one(_variant_config(base, v, s, out), stream)
            runs.setdefault(v, []).append(r)
            if r.interrupted:  # the user asked to stop: the next variant must not start
                print(f"comparison stopped during {v} (seed {s}); the same command continues it", file=stream)
                return CompareResult([], runs, "", [], interrupted=True)
    print("== measuring costs", file=stream)
    device = base.device or ("cuda" if torch.cuda.is_available() else "cpu")
    costs = measure_costs(models, (info.in_chans, info.input_size, info.input_size), bench_batch, bench_rounds,
                          device)
    rows = []
    for v in variants:
        top1 = [r.history[-1]["val_top1"] for r in runs[v]]
        top5 = [r.history[-1]["val_top5"] for r in runs[v]]
        rows.append({"variant": v, "top1": statistics.mean(top1),
                     "top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0, "top5": statistics.mean(top5),
                     **costs[v], "seeds": len(seeds)})
    os.makedirs(out, exist_ok=True)
    header = list(COLUMNS)
    desc = (f"{base.model} on {info.kind} ({info.num_train} train / {info.num_val} val, {info.input_size}px), "
            f"{base.epochs} epochs, {base.opt} lr {base.lr:g}, batch {base.batch_size}, seeds {list(seeds)}; "
            f"latency: batch {bench_batch} on {machine_description(device)}")
    table = format_table([[_fmt(r[k]) for k in header] for r in rows], header)
    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows(rows)

    def write_json(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump({"description": desc, "rows": rows,
                       "runs": {v: [r.run_dir for r in rs] for v, rs in runs.items()}}, f, indent=1)

    def write_md(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(desc + "\n\n" + format_table([[_fmt(r[k]) for k in header] for r in rows], header, markdown=True)
                    + "\n")

    files = write_all_or_none([(os.path.join(out, f"compare.{ext}"), fn)
                               for ext, fn in (("csv", write_csv), ("json", write_json), ("md", write_md))])
    from .plots import MATPLOTLIB_MISSING, have_matplotlib, plot_compare
    if have_matplotlib():
        files.append(plot_compare(rows, os.path.join(out, "compare.png"), "infer_ms",
                                  f"{base.model}, {info.kind}, {base.epochs} epochs", batch=bench_batch))
    else:
        print(f"note: no chart: {MATPLOTLIB_MISSING}", file=stream)
    return CompareResult(rows, runs, desc + "\n" + table, files)
