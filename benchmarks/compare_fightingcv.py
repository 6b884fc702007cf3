"""Side by side with fightingcv-attention (the packaged External-Attention-pytorch).

    python benchmarks/compare_fightingcv.py [--threads 2] [--repeats 15] [--names se,cbam] [--out docs/benchmarks.md]

Installs nothing: it needs the optional ``compare`` extra (``pip install 'visionblocks[compare]'``, i.e.
``fightingcv-attention`` and ``einops``).  For each block both libraries provide, it builds theirs and
ours at the same configuration, compares parameter counts (or says why they differ), records where each
fails (at another input size, in backward, at batch 1 in eval mode), and times forward+backward for both
in one process, alternating, reporting the median of each, their ratio (peer / ours: > 1 means we are
faster) and the geometric mean of the ratios.
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import visionblocks as vb  # noqa: E402

B, C, H, W = 8, 256, 28, 28


@dataclass
class Spec:
    name: str                                # our registry name
    ours: Callable[[], torch.nn.Module]
    peer: tuple[str, str, Callable[[], dict]]  # module, class, kwargs
    inputs: Callable[[int, int, int], tuple]  # (batch, h, w) -> inputs
    note: str = ""                           # why the parameter counts differ, when they do
    sizes: list = field(default_factory=lambda: [(17, 23)])


def nchw(c=C):
    return lambda b, h, w: (torch.randn(b, c, h, w),)


def nlc(d=C):
    return lambda b, h, w: (torch.randn(b, h * w, d),)


P = "fightingcv_attention."
SPECS: list[Spec] = [
    Spec("se", lambda: vb.create_block("se", C), (P + "attention.SEAttention", "SEAttention", lambda: dict(channel=C)),
         nchw(), "the peer's FC layers have no bias (the paper's and ours do: +C/16 + C)"),
    Spec("cbam", lambda: vb.create_block("cbam", C), (P + "attention.CBAM", "CBAMBlock", lambda: dict(channel=C, kernel_size=7)),
         nchw(), "the peer has no BN after the 7x7 conv (the authors' code has it), adds a residual, and its MLP has no bias"),
    Spec("eca", lambda: vb.create_block("eca", C), (P + "attention.ECAAttention", "ECAAttention", lambda: dict(kernel_size=5)),
         nchw(), "the peer's 1-D conv has a bias; its kernel size is fixed by hand (5 = ECA's adaptive size for 256)"),
]


def _fwd_bwd(m, inputs):
    out = m(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    sum(o.float().sum() for o in outs).backward()


def _robustness(make, spec: Spec) -> list[str]:
    """What fails: another input size, backward, batch 1 in eval mode."""
    fails = []
    m = make()
    for h, w in spec.sizes:
        try:
            with torch.no_grad():
                m.eval()(*spec.inputs(2, h, w))
        except Exception as e:
            fails.append(f"{h}x{w}: {type(e).__name__}")
    try:
        _fwd_bwd(m.train(), tuple(t.requires_grad_() for t in spec.inputs(2, H, W)))
    except Exception as e:
        fails.append(f"backward: {type(e).__name__}")
    try:
        with torch.no_grad():
            m.eval()(*spec.inputs(1, H, W))
    except Exception as e:
        fails.append(f"batch 1: {type(e).__name__}")
    return fails


def _time_pair(a, b, inputs, repeats: int, warmup: int = 2) -> tuple[float, float]:
    ta, tb = [], []
    for _ in range(warmup):
        _fwd_bwd(a, inputs)
        _fwd_bwd(b, inputs)
    for i in range(repeats):
        for m, acc in ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta)):
            m.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            _fwd_bwd(m, inputs)
            acc.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ta), statistics.median(tb)


def params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def run(specs: list[Spec], repeats: int) -> list[dict]:
    rows = []
    for s in specs:
        mod, cls, kw = s.peer
        row = {"name": s.name, "peer": f"{mod.split('.')[-1]}.{cls}", "note": s.note}
        try:
            peer_cls = getattr(importlib.import_module(mod), cls)
        except Exception as e:
            row["error"] = f"peer import: {type(e).__name__}: {e}"
            rows.append(row)
            continue
        make_peer = lambda: peer_cls(**kw())  # noqa: E731
        torch.manual_seed(0)
        ours, peer = s.ours(), make_peer()
        row["ours_params"], row["peer_params"] = params(ours), params(peer)
        row["ours_fails"] = _robustness(s.ours, s)
        row["peer_fails"] = _robustness(make_peer, s)
        inputs = s.inputs(B, H, W)
        try:
            t_ours, t_peer = _time_pair(ours.train(), peer.train(), inputs, repeats)
            row.update(ours_ms=t_ours, peer_ms=t_peer, ratio=t_peer / t_ours)
        except Exception as e:
            row["error"] = f"timing: {type(e).__name__}: {str(e)[:120]}"
        rows.append(row)
        print(f"{s.name:<28} {row.get('ours_ms', float('nan')):9.2f} ms  {row.get('peer_ms', float('nan')):9.2f} ms  "
              f"x{row.get('ratio', float('nan')):.2f}", file=sys.stderr)
    return rows


def markdown(rows: list[dict], description: str) -> str:
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    gm = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")
    out = ["# visionblocks vs fightingcv-attention", "",
           "Generated by `python benchmarks/compare_fightingcv.py`. Forward+backward latency, median of "
           "alternating runs in one process; ratio = peer / ours (> 1: we are faster).", "",
           f"Machine: {description}", "",
           f"Input: batch {B}, {C} channels at {H}x{W} (tokens: {H * W} x {C}). Geometric mean of the ratios: "
           f"**x{gm:.2f}** over {len(ratios)} blocks.", "",
           "| block | peer class | params ours | params peer | fwd+bwd ms ours | fwd+bwd ms peer | ratio | peer fails | we fail | why params differ |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda k, fmt: fmt.format(r[k]) if k in r else "—"  # noqa: E731
        out.append(f"| {r['name']} | {r['peer']} | {f('ours_params', '{:,}')} | {f('peer_params', '{:,}')} | "
                   f"{f('ours_ms', '{:.2f}')} | {f('peer_ms', '{:.2f}')} | {f('ratio', 'x{:.2f}')} | "
                   f"{'; '.join(r.get('peer_fails', [])) or 'none'} | {'; '.join(r.get('ours_fails', [])) or 'none'} | "
                   f"{r.get('error') or (r['note'] if r.get('ours_params') != r.get('peer_params') else '')} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--names", help="comma-separated subset")
    ap.add_argument("--out", help="write the Markdown table here (e.g. docs/benchmarks.md)")
    args = ap.parse_args(argv)
    try:
        importlib.import_module("fightingcv_attention")
    except ImportError:
        print("fightingcv-attention is not installed: pip install 'visionblocks[compare]'", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    specs = [s for s in SPECS if not args.names or s.name in args.names.split(",")]
    rows = run(specs, args.repeats)
    malloc = [k for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_") if k in os.environ]
    description = (f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads, "
                   f"float32, CPU; glibc malloc thresholds {'raised: ' + ', '.join(malloc) if malloc else 'not raised'}")
    text = markdown(rows, description)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
