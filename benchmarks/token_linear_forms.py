"""The token-mixing linear layer (``visionblocks.layers.token_linear``) in four equivalent forms, timed side by side.

    MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000 \\
        python benchmarks/token_linear_forms.py --shape 8,196,512,256

``--shape B,N,C,N'``: B samples of N tokens with C channels, mixed to N' tokens.  Forms: ``baddbmm`` (the
library's: weight broadcast over the batch, bias in the kernel), ``conv1d`` (tokens as in-channels, kernel 1),
``matmul`` (broadcast matmul + bias) and ``linear`` (transpose, ``F.linear``, transpose).  All four are checked equal
first; then inference (no grad) and forward+backward are timed with :func:`visionblocks.measure.time_callables`,
alternating, and each form's median time and its per-round ratio to ``baddbmm`` are printed.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from visionblocks.measure import malloc_settings, time_callables


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="8,196,512,256", help="B,N,C,N' (default 8,196,512,256: Mixer-B/16 tokens)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds of timed calls per measurement")
    args = ap.parse_args(argv)
    b, n, c, d = (int(v) for v in args.shape.split(","))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(b, n, c, requires_grad=True)
    w = torch.randn(d, n, requires_grad=True)
    bias = torch.randn(d, requires_grad=True)
    grad = torch.randn(b, d, c)
    forms = {
        "baddbmm": lambda: torch.baddbmm(bias[:, None], w.expand(b, -1, -1), x),
        "conv1d": lambda: F.conv1d(x, w[:, :, None], bias),
        "matmul": lambda: torch.matmul(w, x) + bias[:, None],
        "linear": lambda: F.linear(x.transpose(1, 2), w, bias).transpose(1, 2),
    }
    with torch.no_grad():
        ref = forms["baddbmm"]()
        for name, f in forms.items():
            torch.testing.assert_close(f(), ref, rtol=1e-4, atol=1e-3, msg=f"{name} differs")

    def step(f):
        def run():
            f().backward(grad)
            x.grad = w.grad = bias.grad = None
        return run

    print(f"shape {args.shape}, {args.threads} threads, {malloc_settings()}")
    with torch.no_grad():
        inf = time_callables(forms, rounds=30, min_time=args.min_time)
    train = time_callables({k: step(f) for k, f in forms.items()}, rounds=30, min_time=args.min_time)
    print(f"{'form':10s} {'inference ms':>13s} {'/ baddbmm':>10s} {'fwd+bwd ms':>11s} {'/ baddbmm':>10s}")
    for k in forms:
        print(f"{k:10s} {inf.median(k):13.2f} {inf.ratio(k, 'baddbmm'):10.2f} {train.median(k):11.2f} "
              f"{train.ratio(k, 'baddbmm'):10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
