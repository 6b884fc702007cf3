"""What the forward guard of ``@validated`` (issue 17) costs per call, in eager mode, on CPU.

Not a test: run it by hand, e.g.::

    .venv/bin/python benchmarks/validation_overhead.py                   # ~10 blocks, small and realistic inputs
    .venv/bin/python benchmarks/validation_overhead.py --blocks se cbam --rounds 41 --threads 1

Every block registered by the library is wrapped by :func:`visionblocks.layers.validate.validated`, whose
``forward`` runs the guard (dtype rule, batch-1 BatchNorm rule) and then the block's own forward.  The
unguarded forward is the wrapped function itself (``type(m).forward.__wrapped__``, set by
``functools.wraps``), so the two are timed on the same module, weights and input, alternating guarded and
unguarded calls round by round (the order flips every round) so that drifts of a shared machine hit both
alike.  Each figure is the median over ``--rounds`` of the mean time of ``--calls`` calls (eval mode,
``torch.no_grad()``, ``--threads`` torch threads).

On a busy machine the difference of two forward times is noise of the order of the forward's own
spread, so each row also times the guard *alone* on the same module and input: the block's class
re-decorated around a forward that returns its input (``guard us``, thousands of calls per round, precise),
against that bare forward.  ``ratio`` is then ``(forward + guard) / forward``; ``direct`` is the ratio of the
alternating guarded/unguarded medians (the same figure, measured with the forward's noise).

Two inputs per block: ``small`` (the registry example, batch 2 at ~14x14: the guard's worst case relative
to the work) and ``realistic`` (batch 8 at 56x56 for maps, 196 tokens for token blocks).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

__all__ = ["BLOCKS", "time_pair", "main"]

BLOCKS = ("se", "eca", "cbam", "coord_attention", "triplet_attention", "self_attention", "external_attention",
          "mbconv", "ghost_conv", "repvgg_block", "vanilla_conv", "mobilevit_attention")


def time_pair(guarded, unguarded, args: tuple, rounds: int, calls: int) -> tuple[float, float]:
    """Median seconds per call of ``guarded(*args)`` and ``unguarded(*args)``, timed in alternation."""
    for _ in range(max(3, calls // 4)):  # warm-up (allocator, oneDNN primitives)
        guarded(*args)
        unguarded(*args)
    times: dict[int, list[float]] = {0: [], 1: []}
    fns = (guarded, unguarded)
    for r in range(rounds):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            fn = fns[i]
            t = time.perf_counter()
            for _ in range(calls):
                fn(*args)
            times[i].append((time.perf_counter() - t) / calls)
    return statistics.median(times[0]), statistics.median(times[1])


def _inputs(info, which: str):
    import torch

    from visionblocks import testing
    if which == "small":
        return testing.make_inputs(info)
    if info.layout == "nlc":
        return (torch.randn(8, 196, info.example.input_shape[2]),)
    return testing.make_inputs(info, batch=8, size=None if info.fixed_size else (56, 56))


def _guard_only(cls: type):
    """``cls`` re-decorated with ``@validated`` around a forward that returns its input, and that bare forward:
    called with a module of ``cls``, the first times the guard alone (on that module and input)."""
    from visionblocks.layers.validate import validated

    def passthrough(self, *args, **kwargs):
        return args[0]

    null = validated(type(f"GuardOnly{cls.__name__}", (cls,), {"forward": passthrough}))
    return null.forward, passthrough


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", nargs="*", default=list(BLOCKS))
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--calls", type=int, default=0, help="calls per round (default: ~20 ms of work per round)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    import torch

    import visionblocks as vb
    from visionblocks import testing
    torch.set_num_threads(args.threads)
    env = {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds, env {env}")
    print(f"{'block':<20} {'input':<10} {'shape':<14} {'forward us':>11} {'guard us':>9} {'ratio':>7} "
          f"{'direct':>7}")

    def row(name, which, m, x):
        fwd = type(m).forward
        raw = getattr(fwd, "__wrapped__", None)
        if raw is None:
            print(f"{name:<20} (not wrapped by @validated)")
            return
        guard_only, bare = _guard_only(type(m))
        with torch.no_grad():
            t = time.perf_counter()
            fwd(m, *x)
            once = time.perf_counter() - t
            calls = args.calls or max(5, min(2000, int(0.02 / max(once, 1e-6))))
            g, u = time_pair(lambda *a: fwd(m, *a), lambda *a: raw(m, *a), x, args.rounds, calls)
            go, bo = time_pair(lambda *a: guard_only(m, *a), lambda *a: bare(m, *a), x, args.rounds, 2000)
        guard = go - bo
        shape = "x".join(map(str, x[0].shape))
        print(f"{name:<20} {which:<10} {shape:<14} {u * 1e6:11.1f} {guard * 1e6:9.2f} {(u + guard) / u:7.4f} "
              f"{g / u:7.3f}", flush=True)

    for name in args.blocks:
        info = vb.block_info(name)
        m = testing.build(info).eval()
        for which in ("small", "realistic"):
            row(name, which, m, _inputs(info, which))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
