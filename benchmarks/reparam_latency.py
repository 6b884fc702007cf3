"""Forward latency of the re-parameterizable blocks: training form vs folded form vs a bare ``nn.Conv2d``.

Not a test: run it by hand, e.g.::

    MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000 \\
        .venv/bin/python benchmarks/reparam_latency.py --threads 2

For every block at ResNet-stage shapes (batch 8, 64 channels at 56x56 and 128 channels at 28x28, 3x3,
stride 1, in = out), the three modules run in one process, interleaved (one forward of each, in a rotating
order, per round) so that machine load drifts hit them alike; the median times are printed, and the ratios
are medians of the per-round ratios (paired measurements).  The folded
form must be within 3% of the bare convolution (the exit status is 1 otherwise): folding is only worth it if
it leaves nothing but the convolution.  RepVGG's folded form also applies its ReLU (in place), so for it the
criterion compares with the bare convolution followed by the same ReLU ("same ops"); folded/conv is printed too.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
import visionblocks as vb  # noqa: E402
from visionblocks.testing import randomize_bn_stats  # noqa: E402

BLOCKS = ("repvgg_block", "acnet_block", "diverse_branch_block")
SHAPES = ((8, 64, 56, 56), (8, 128, 28, 28))
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return (f"{cpu}; {os.cpu_count()} logical CPUs visible; torch {torch.__version__}, "
            f"{torch.get_num_threads()} intra-op threads; Python {platform.python_version()}")


def bench(modules: dict[str, nn.Module], x: torch.Tensor, rounds: int, warmup: int) -> dict[str, list[float]]:
    names = list(modules)
    times = {n: [] for n in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for n in names:
                modules[n](x)
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
            for n in order:
                t0 = time.perf_counter()
                modules[n](x)
                times[n].append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tolerance", type=float, default=0.03, help="allowed folded/bare slowdown (0.03 = 3%%)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"machine: {machine()}")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print("load average (1, 5, 15 min) at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for v in MALLOC_VARS:
        val = os.environ.get(v)
        print(f"glibc {v}: {'raised to ' + val if val else 'not set (glibc default: dynamic mmap threshold)'}")
    print(f"{'block':22s} {'input':>16s} {'train ms':>9s} {'folded ms':>9s} {'conv ms':>9s} {'conv+act':>9s} "
          f"{'train/folded':>12s} {'folded/conv':>11s} {'folded/same-ops':>15s}")
    ok = True
    for shape in SHAPES:
        b, c, h, w = shape
        x = torch.randn(shape)
        bare = nn.Conv2d(c, c, 3, 1, 1, bias=True).eval()
        for name in BLOCKS:
            train = randomize_bn_stats(vb.create_block(name, c, c, 3, 1)).eval()
            folded = vb.reparameterize(copy.deepcopy(train))
            with torch.inference_mode():
                err = ((folded(x) - train(x)).abs().max() / train(x).abs().max()).item()
            modules = {"train": train, "folded": folded, "conv": bare}
            has_act = not isinstance(folded.act, nn.Identity)
            if has_act:  # the same conv followed by the block's activation: the ops the folded block runs
                modules["conv_act"] = nn.Sequential(bare, copy.deepcopy(folded.act))
            t = bench(modules, x, args.rounds, args.warmup)
            med = {k: statistics.median(v) * 1e3 for k, v in t.items()}
            # ratio: median over rounds of the per-round folded/conv ratio (the two ran back to back, so a
            # load change hits both); the medians of the times are printed alongside
            ratio = statistics.median(f / c for f, c in zip(t["folded"], t["conv"]))
            train_ratio = statistics.median(a / f for a, f in zip(t["train"], t["folded"]))
            base = "conv_act" if has_act else "conv"
            ratio_same = statistics.median(f / c for f, c in zip(t["folded"], t[base]))
            good = ratio_same <= 1 + args.tolerance
            ok &= good
            conv_act = f"{med['conv_act']:9.2f}" if has_act else f"{'-':>9s}"
            print(f"{name:22s} {str(tuple(shape)):>16s} {med['train']:9.2f} {med['folded']:9.2f} {med['conv']:9.2f} "
                  f"{conv_act} {train_ratio:12.2f} {ratio:11.3f} {ratio_same:15.3f} {'ok' if good else 'SLOW'}"
                  f"  (fold error {err:.1e})")
    print("load average (1, 5, 15 min) at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print("folded within {:.0%} of the bare convolution running the same ops (conv, plus the block's activation "
          "where it has one): {}".format(args.tolerance, "yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
