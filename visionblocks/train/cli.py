"""``visionblocks train`` and ``visionblocks compare`` on the command line.

:func:`add_subcommands` adds both to the ``visionblocks`` parser; ``python -m visionblocks.train train ...`` runs them
on their own (and under ``torchrun``: ``torchrun --nproc_per_node=2 -m visionblocks.train train ...``).  Bad input
prints one line and exits with status 2; an interrupted run exits with 130 after saving its checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Sequence

from .errors import TrainError

__all__ = ["add_subcommands", "main_train", "main_compare", "build_parser", "main"]


def _json_dict(s: str) -> dict[str, Any]:
    try:
        d = json.loads(s)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e.msg}): {s!r}") from None
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object like '{{\"drop_rate\": 0.1}}', got {s!r}")
    return d


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _non_negative_int(s: str) -> int:
    v = int(s) if s.lstrip("-").isdigit() else None
    if v is None or v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {s!r}")
    return v


def _add_recipe(p: argparse.ArgumentParser) -> None:
    """Options shared by train and compare (all default to None: 'not given', so a resume can tell)."""
    p.add_argument("--model", help="registered model name (default resnet18)")
    p.add_argument("--data", help="ImageFolder directory (DIR/train/<class>/..., DIR/val/...), a CIFAR-10/100 python "
                                  "archive or its directory, or 'digits' (scikit-learn's, offline)")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--model-kwargs", type=_json_dict, help="JSON object of create_model arguments")
    p.add_argument("--pretrained", help="checkpoint path or URL to start from")
    p.add_argument("--batch-size", type=_positive_int, help="global batch (split over torchrun's processes); 32")
    p.add_argument("--eval-batch-size", type=_positive_int)
    p.add_argument("--opt", choices=["sgd", "adamw"], help="default adamw")
    p.add_argument("--lr", type=float, help="peak learning rate (default AdamW 1e-3, SGD 0.1 x B/256)")
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float, help="default SGD 1e-4, AdamW 0.05 (never on no_weight_decay())")
    p.add_argument("--warmup-epochs", type=float, help="linear warm-up (default a tenth of the epochs, at most 5)")
    p.add_argument("--min-lr", type=float)
    p.add_argument("--label-smoothing", type=float, help="default 0.1")
    p.add_argument("--ema", type=float, help="keep an EMA of the weights with this decay (e.g. 0.999)")
    p.add_argument("--amp", action="store_true", default=None, help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true", default=None)
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the training step")
    p.add_argument("--seed", type=_non_negative_int, help="default 0")
    p.add_argument("--input-size", type=_positive_int, help="image side (default: the data's, or the model's)")
    p.add_argument("--in-chans", type=_positive_int, help="1 (grayscale) or 3 (default: the data's)")
    p.add_argument("--hflip", type=float, help="horizontal flip probability, in [0, 1] (default 0.5; digits 0)")
    p.add_argument("--limit", type=_positive_int, help="use at most N images of each split (quick checks)")
    p.add_argument("--workers", type=_non_negative_int, help="DataLoader workers (default: 0 in memory, 8 files)")
    p.add_argument("--device", help="cpu or cuda (default cuda when available)")
    p.add_argument("--sync-bn", action="store_true", default=None, help="SyncBatchNorm under torchrun (GPUs)")
    p.add_argument("--fsdp", action="store_true", default=None,
                   help="under torchrun: shard parameters, gradients and optimizer state over the processes (FSDP2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_subcommands(subparsers) -> None:
    """Add ``train`` and ``compare`` to the subparsers of the ``visionblocks`` command."""
    pt = subparsers.add_parser("train", help="train a model (optionally with a block) on your data",
                               description="Train a registered model on an ImageFolder tree, a CIFAR archive or the "
                                           "digits, with top-1/top-5 on the val split every epoch.")
    _add_recipe(pt)
    pt.add_argument("--attn", help="attention block for the model's attn= slot (a registry name, or none)")
    pt.add_argument("--insert", help="BLOCK[@PRESET|@GLOB]: insert a block into any model (preset default 'se')")
    pt.add_argument("--out", help="run directory (checkpoint, logs, curves)")
    pt.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    pt.add_argument("--stop-after-epoch", type=_positive_int, help="stop (resumably) after this epoch")
    pt.set_defaults(fn=main_train)
    pc = subparsers.add_parser("compare", help="train variants of a model under one recipe; accuracy against cost",
                               description="Train each --attn variant under the identical recipe and seed(s), then "
                                           "write a table (top-1, params, MACs, latency, memory) and a chart.")
    _add_recipe(pc)
    pc.add_argument("--attn", default="none,se,eca,cbam", help="comma-separated variants (none: the plain model)")
    pc.add_argument("--seeds", default="0", help="comma-separated seeds (mean and spread over them)")
    pc.add_argument("--out", help="directory of the runs and the table (default compare-<model>)")
    pc.add_argument("--bench-batch", type=_positive_int, default=16, help="batch of the latency measurement")
    pc.add_argument("--bench-rounds", type=_positive_int, default=5)
    pc.set_defaults(fn=main_compare)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from .engine import TrainConfig
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    out = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if getattr(args, "quiet", False):
        out["progress"] = False
    return out


def main_train(args: argparse.Namespace) -> int:
    """``visionblocks train``: 0 when the run is complete, 130 when interrupted (checkpoint saved)."""
    from .engine import INTERRUPTED, TrainConfig, config_for_resume, train
    ov = _overrides(args)
    if args.resume is not None and not args.resume.strip():
        raise TrainError("--resume needs the run's folder (RUN_DIR), got ''")
    if args.resume:
        if args.out and args.out != args.resume:
            raise TrainError(f"--resume {args.resume} continues that directory; drop --out {args.out}")
        cfg = config_for_resume(args.resume, ov)
    else:
        cfg = TrainConfig(**ov)
    res = train(cfg, resume=bool(args.resume))
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun the first process reports, once
        return INTERRUPTED if res.interrupted else 0
    if res.interrupted:
        print(f"stopped after {res.epochs_done} epoch(s) of {cfg.epochs}; checkpoint in {res.run_dir}; continue with: "
              f"visionblocks train --resume {res.run_dir}", file=sys.stderr)
        return INTERRUPTED
    last = res.history[-1]
    print(f"{cfg.title}: val top-1 {last['val_top1']:.2f}% top-5 "
          f"{last['val_top5']:.2f}% after {res.epochs_done} epochs; run in {res.run_dir}")
    from .plots import MATPLOTLIB_MISSING, have_matplotlib
    if not have_matplotlib():  # as compare says it: the run folder has no curves.png
        print(f"note: no curves.png: {MATPLOTLIB_MISSING}", file=sys.stderr)
    return 0


def main_compare(args: argparse.Namespace) -> int:
    """``visionblocks compare``: trains (or resumes) every variant, then writes the table and chart; 130 when a run
    is interrupted (the comparison stops there; the same command continues it)."""
    from .compare import compare
    from .engine import TrainConfig
    ov = _overrides(args)
    ov.pop("attn", None)
    variants = [v.strip() for v in args.attn.split(",") if v.strip()]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        seeds = []  # (refused below, with the negative ones)
    if not seeds or min(seeds) < 0:
        raise TrainError(f"--seeds must be comma-separated integers >= 0, got {args.seeds!r}")
    ov.pop("seed", None)
    base = TrainConfig(**ov)
    out = args.out or f"compare-{base.model}"
    res = compare(base, variants, seeds, out, bench_batch=args.bench_batch, bench_rounds=args.bench_rounds)
    if res.interrupted:
        from .engine import INTERRUPTED
        return INTERRUPTED
    print(res.table)
    for p in res.files:
        print(f"wrote {p}")
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse that prints a one-line message (not the whole usage) and exits 2, and takes options only as spelt:
    no abbreviations (``--epoch`` is not ``--epochs``, and an option added later cannot change what a script meant)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed subcommand (``args.fn``): its exit status; a bad value or a file that cannot be read or
    written (ValueError, OSError: TrainError, the library's bad-value errors) is one line and status 2; Ctrl-C that
    the command did not handle itself (before a run starts, or a second one) is one line and status 130."""
    try:
        return args.fn(args)
    except BrokenPipeError:
        return 0
    except (ValueError, OSError) as e:
        print(f"visionblocks {args.command}: error: {first_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"visionblocks {args.command}: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:
        # running out of memory (a huge --input-size, --batch-size, model) is the command's size, not a bug: one
        # line; any other RuntimeError is a bug and keeps its traceback
        if not isinstance(e, MemoryError) and not _is_out_of_memory(e):
            raise
        print(f"visionblocks {args.command}: error: out of memory ({first_line(e) or type(e).__name__}); try a smaller "
              f"size, batch or model", file=sys.stderr)
        return 2


def _is_out_of_memory(e: RuntimeError) -> bool:
    """Whether ``e`` is torch's failed allocation (CPU "can't allocate memory", CUDA "out of memory")."""
    import torch

    return isinstance(e, torch.OutOfMemoryError) or any(
        s in str(e) for s in ("can't allocate memory", "out of memory", "Cannot allocate memory"))


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="visionblocks", description="visionblocks train / compare")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_subcommands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m visionblocks.train {train,compare} ...`` (what ``visionblocks train ...`` runs)."""
    return run_command(build_parser().parse_args(argv))


def first_line(e: BaseException) -> str:
    """The message's first line; for an error re-raised from a DataLoader worker ("Caught TrainError in DataLoader
    worker process 0. Original Traceback ..."), the worker's own message."""
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]:
        last = lines[-1]
        name = type(e).__name__ + ": "
        return last.split(name, 1)[1] if name in last else last
    return lines[0] if lines else type(e).__name__
