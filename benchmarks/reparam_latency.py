"""Forward latency of the re-parameterizable blocks: training form vs folded form vs a bare ``nn.Conv2d``.

Not a test: run it by hand, e.g.::

    MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000 \\
        .venv/bin/python benchmarks/reparam_latency.py --threads 2

For every block at ResNet-stage shapes (batch 8, 64 channels at 56x56 and 128 channels at 28x28, 3x3,
stride 1, in = out), the three modules run in one process, interleaved by
:func:`visionblocks.measure.time_callables` (one forward of each, in a rotating order, per round) so that
machine load drifts hit them alike; the median times are printed, and the ratios are medians of the
per-round ratios (paired measurements).  The folded
form must be within 3% of the bare convolution (the exit status is 1 otherwise): folding is only worth it if
it leaves nothing but the convolution.  RepVGG's folded form also applies its ReLU (in place), so for it the
criterion compares with the bare convolution followed by the same ReLU ("same ops"); folded/conv is printed too.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
import visionblocks as vb  # noqa: E402
from visionblocks import measure  # noqa: E402
from visionblocks.testing import randomize_bn_stats  # noqa: E402

__all__ = ["BLOCKS", "SHAPES", "main"]

BLOCKS = ("repvgg_block", "acnet_block", "diverse_branch_block")
SHAPES = ((8, 64, 56, 56), (8, 128, 28, 28))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tolerance", type=float, default=0.03, help="allowed folded/bare slowdown (0.03 = 3%%)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"machine: {measure.machine_description()}")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
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
            with torch.inference_mode():
                t = measure.time_callables({k: (lambda m=m: m(x)) for k, m in modules.items()},
                                           warmup=args.warmup, rounds=args.rounds)
            med = {k: t.median(k) for k in modules}
            # ratio: median over rounds of the per-round folded/conv ratio (the two ran back to back, so a
            # load change hits both); the medians of the times are printed alongside
            ratio = t.ratio("folded", "conv")
            train_ratio = t.ratio("train", "folded")
            ratio_same = t.ratio("folded", "conv_act" if has_act else "conv")
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
