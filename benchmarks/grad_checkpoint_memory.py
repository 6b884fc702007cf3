"""Peak training memory with and without ``model.set_grad_checkpointing(True)``, on CPU.

Not a test: run it by hand, e.g.::

    .venv/bin/python benchmarks/grad_checkpoint_memory.py                 # resnet50, volo_d1, mobilevit_s
    .venv/bin/python benchmarks/grad_checkpoint_memory.py --models resnet18 --size 128 --batch 4

Two figures per model and setting, for one training step (forward, ``loss.backward()``) at ``--batch`` x 3 x
``--size`` x ``--size``:

* **saved**: the bytes of the activations autograd keeps for backward plus the output
  (:func:`visionblocks.measure.activation_bytes`, distinct storages once).  With checkpointing a stage keeps
  only its input: its activations are recomputed in backward, one stage at a time.  Deterministic.
* **peak RSS**: in a fresh process per setting, the rise of the process's peak resident memory
  (``ru_maxrss``) over its resident memory just before the step: activations, the recomputed stage, the
  gradients and the allocator's overhead, i.e. what a training step really costs on top of the model.  The
  child runs with ``MALLOC_MMAP_THRESHOLD_=131072`` (unless set): glibc then returns every freed tensor to the
  system, so the resident memory follows the live tensors instead of what the allocator keeps cached.

The figures do not depend on the number of threads; the step is run once.  The parameters (and their
gradients, the same in both settings) are part of the RSS peak, not of the saved activations.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

__all__ = ["MODELS", "measure_step", "main"]

MODELS = ("resnet50", "volo_d1", "mobilevit_s")
_MIB = 2 ** 20
_MMAP_THRESHOLD = 128 * 1024  # glibc: blocks above this are mmapped and unmapped when freed, so RSS follows live memory


def _rss_bytes() -> int:
    """The process's resident memory now (Linux /proc; falls back to the peak where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_step(name: str, checkpointing: bool, batch: int, size: int, seed: int = 0) -> dict:
    """One training step of model ``name``: saved-activation bytes (autograd hooks) and the peak RSS rise."""
    import torch

    import visionblocks as vb
    from visionblocks import measure

    torch.manual_seed(seed)
    model = vb.create_model(name).train()
    model.set_grad_checkpointing(checkpointing)
    x = torch.randn(batch, 3, size, size)
    before = _rss_bytes()  # the model (and the input) are resident; the peak so far is the build's
    out = model(x)
    out.float().square().mean().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del out
    model.zero_grad(set_to_none=True)
    saved = measure.activation_bytes(model, (x,))  # after the step: its own forward must not set the peak
    return {"model": name, "checkpointing": checkpointing, "saved": saved, "peak_rss_rise": max(0, peak - before),
            "params": sum(p.numel() for p in model.parameters())}


def _run_child(name: str, checkpointing: bool, batch: int, size: int, threads: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--batch", str(batch), "--size", str(size),
           "--threads", str(threads)] + (["--checkpointing"] if checkpointing else [])
    env = dict(os.environ)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(_MMAP_THRESHOLD))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:  # one setting, in its own process: print one JSON line
        import torch
        torch.set_num_threads(args.threads)
        print(json.dumps(measure_step(args.child, args.checkpointing, args.batch, args.size)))
        return 0

    from visionblocks import measure
    print(f"machine: {measure.machine_description()}")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    mmap = os.environ.get("MALLOC_MMAP_THRESHOLD_", _MMAP_THRESHOLD)
    print(f"one training step at batch {args.batch}, {args.size}x{args.size}, float32, MALLOC_MMAP_THRESHOLD_={mmap}; "
          "MiB\n")
    rows = []
    for name in args.models:
        off = _run_child(name, False, args.batch, args.size, args.threads)
        on = _run_child(name, True, args.batch, args.size, args.threads)
        rows.append([name, f"{off['params'] / 1e6:.1f} M",
                     f"{off['saved'] / _MIB:.0f}", f"{on['saved'] / _MIB:.0f}", f"{on['saved'] / off['saved']:.2f}",
                     f"{off['peak_rss_rise'] / _MIB:.0f}", f"{on['peak_rss_rise'] / _MIB:.0f}",
                     f"{on['peak_rss_rise'] / max(off['peak_rss_rise'], 1):.2f}"])
        print(f"  {name}: done", file=sys.stderr, flush=True)
    header = ["model", "params", "saved (off)", "saved (on)", "ratio", "peak RSS rise (off)", "peak RSS rise (on)",
              "ratio"]
    print(measure.format_table(rows, header, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
