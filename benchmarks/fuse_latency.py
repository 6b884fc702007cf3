"""Eval latency of a model before and after ``visionblocks.fuse`` (conv-BN folds and re-parameterization), side
by side in paired rounds (``visionblocks.measure.time_callables``), medians and the paired ratio.

    MALLOC_MMAP_THRESHOLD_=... .venv/bin/python benchmarks/fuse_latency.py --models resnet50,mobilenetv2,efficientnet_b0
"""
from __future__ import annotations

import argparse
import copy
import os

import torch

import visionblocks as vb
from visionblocks.measure import machine_description, time_callables


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet18,resnet50,mobilenetv2,efficientnet_b0")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--min-time", type=float, default=3.0)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(machine_description("cpu"))
    print("malloc thresholds raised:", bool(os.environ.get("MALLOC_MMAP_THRESHOLD_")))
    print(f"| model | unfused ms | fused ms | fused/unfused (paired median) |\n|---|---|---|---|")
    for name in a.models.split(","):
        base = vb.create_model(name).eval()
        fused = vb.fuse(copy.deepcopy(base))
        x = torch.randn(a.batch, 3, a.size, a.size)
        with torch.inference_mode():
            torch.testing.assert_close(fused(x), base(x), rtol=1e-4, atol=1e-4)
            t = time_callables({"unfused": lambda: base(x), "fused": lambda: fused(x)}, rounds=a.rounds,
                               min_time=a.min_time)
        print(f"| {name} | {t.median('unfused'):.1f} | {t.median('fused'):.1f} | {t.ratio('fused', 'unfused'):.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
