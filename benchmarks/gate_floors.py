"""The memory-bound gates against their floor: each gate's time over ONE broadcast multiply ``x * s``
(s: (B, C, 1, 1)) of the same tensor, in eval and in training (forward + backward, the input requiring grad),
timed side by side in paired rounds (``visionblocks.measure.time_callables``), with each gate's eval floor: the
full-tensor passes its equations need, in units of that multiply (read x + write y = 1 pass; a full-tensor
read or write alone = 1/2).  The pass counts are argued in docs/benchmarks_notes.md ("Gates and their floors").

    MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 \\
        .venv/bin/python benchmarks/gate_floors.py --threads 2

Ratios, not times, are what to compare: on a shared machine the multiply itself varies by 2x between runs.
On a machine with more runnable jobs than cores, multi-threaded wall times measure mostly how long each OpenMP
region waits for its threads to be scheduled (a gate of ten small kernels then "costs" ten time slices);
``--cpu-time`` (one thread) times each call by the CPU time of the calling thread instead, which leaves out
the time spent waiting for a core (same alternating rounds, medians of the per-round ratios).
``--channels-last``: input and unit channels-last, the gates' convolution weights too (what a network fused on
the CPU hands its gates); the unit is then the multiply of the channels-last tensor.
To measure another checkout's gates with this script, put its package first on the path
(``cd /tmp && PYTHONPATH=/path/to/old/checkout python /work/main/benchmarks/gate_floors.py``).
"""
from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.measure import Timings, TrainStep, machine_description, time_callables

# The floors: ``visionblocks.bench.GATE_PASSES`` (the eager count the bench reports, and the fused count).
NAMES = ("se", "eca", "sge", "coord_attention", "shuffle_attention", "cbam", "triplet_attention")


class _Multiply(nn.Module):
    """The unit: ``x * s`` with a (B, C, 1, 1) ``s`` (a parameter, so the training unit has both gradients)."""

    def __init__(self, shape):
        super().__init__()
        self.s = nn.Parameter(torch.rand(shape[0], shape[1], 1, 1))

    def forward(self, x):
        return x * self.s


def _time_cpu(fns, reset, rounds: int, min_time: float) -> Timings:
    """:func:`time_callables`' alternating rounds, each call timed by ``time.thread_time`` (one thread)."""
    names, ms = list(fns), {n: [] for n in fns}
    for _ in range(2):  # warm-up
        for n in names:
            reset.get(n, lambda: None)()
            fns[n]()
    spent, r = 0.0, 0
    while r < rounds or spent < min_time:
        k = r % len(names)
        for n in names[k:] + names[:k]:
            reset.get(n, lambda: None)()
            t0 = time.thread_time()
            fns[n]()
            dt = time.thread_time() - t0
            ms[n].append(dt * 1e3)
            spent += dt
        r += 1
    return Timings(ms)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", default=",".join(NAMES))
    p.add_argument("--shape", default="8,256,28,28")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--min-time", type=float, default=2.0)
    p.add_argument("--no-train", action="store_true", help="eval only")
    p.add_argument("--cpu-time", action="store_true",
                   help="one thread, each call timed by the calling thread's CPU time (time.thread_time)")
    p.add_argument("--channels-last", action="store_true",
                   help="the input (and the unit's) stored channels-last, the gates' convolution weights too: what "
                        "the gates of a network fused on the CPU receive")
    a = p.parse_args(argv)
    if a.cpu_time:
        a.threads = 1
    torch.set_num_threads(a.threads)
    shape = tuple(int(v) for v in a.shape.split(","))
    print(machine_description("cpu"))
    print("MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ set:",
          {k: os.environ.get(k, "unset") for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")})
    print(f"input {shape}{' channels-last' if a.channels_last else ''}, {a.threads} threads; ratios are paired "
          "medians over the rounds (gate / multiply)"
          + ("; times: CPU time of the calling thread" if a.cpu_time else ""))
    torch.manual_seed(0)
    x = torch.randn(shape)
    if a.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xg = x.clone().requires_grad_(True)
    mul = _Multiply(shape)
    mul_step = TrainStep(mul, (xg,))
    from visionblocks.bench import GATE_PASSES
    floors = {k: v.passes for k, v in GATE_PASSES.items()}
    fused = {k: v.fused for k, v in GATE_PASSES.items()}
    print("| gate | eval ms | eval x mul | eager floor | / eager floor | fused floor | / fused floor | fwd+bwd ms "
          "| fwd+bwd x mul | mul ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in a.names.split(","):
        gate = vb.create_block(name, shape[1])
        ev = vb.to_channels_last(gate.eval()) if a.channels_last else gate.eval()

        def run_eval(ev=ev):
            with torch.inference_mode():
                ev(x)

        def run_mul():
            with torch.inference_mode():
                x * mul.s

        fns = {"mul": run_mul, "eval": run_eval}
        reset = {}
        if not a.no_train:
            tr = vb.create_block(name, shape[1]).train()
            if a.channels_last:
                vb.to_channels_last(tr)
            step = TrainStep(tr, (xg,))
            fns.update({"train": step, "mul_train": mul_step})
            reset = {"train": step.reset, "mul_train": mul_step.reset}
        if a.cpu_time:
            t = _time_cpu(fns, reset, a.rounds, a.min_time)
        else:
            t = time_callables(fns, rounds=a.rounds, min_time=a.min_time, reset=reset)
        floor = floors.get(name, float("nan"))
        re = t.ratio("eval", "mul")
        ff = fused.get(name, float("nan"))
        row = (f"| {name} | {t.median('eval'):.2f} | {re:.2f} | {floor:g} | {re / floor:.2f} | {ff:g} | "
               f"{re / ff:.2f} |")
        if not a.no_train:
            row += f" {t.median('train'):.2f} | {t.ratio('train', 'mul'):.2f} |"
        else:
            row += " | |"
        print(row + f" {t.median('mul'):.2f} |", flush=True)
    if not a.no_train:
        print("(the unit's own forward + backward, x * s with both gradients:",
              f"{t.ratio('mul_train', 'mul'):.2f} multiplies in the last row's rounds)")


if __name__ == "__main__":
    main()
