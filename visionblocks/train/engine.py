"""The training loop of ``visionblocks train``: one fixed recipe, resumable exactly, on one process or many.

Recipe (defaults: AdamW, lr 1e-3, weight decay 0.05, batch 32): SGD (momentum) or AdamW; a cosine learning-rate schedule with linear warm-up, stepped every
iteration; label smoothing; weight decay on every parameter except those the model's ``no_weight_decay()`` names
(biases, norm weights, position tables); optionally an exponential moving average of the weights
(``torch.optim.swa_utils.AveragedModel``, evaluated beside the model); bf16 autocast (``amp``), channels-last and
``torch.compile`` on request.  Top-1/top-5 and the loss on the val split after every epoch.

``batch_size`` is the global batch: under ``torchrun`` each of the W processes takes ``batch_size / W`` samples of
the same shuffled order (a ``DistributedSampler``), so a step sees the samples one process would see with the same
command (and with ``SyncBatchNorm``, or a model without batch norm, computes the same update).

Determinism: the seed fixes the model's initialisation, the shuffling (the sampler's seed and epoch) and every
augmentation (a generator per sample, see :mod:`visionblocks.train.data`); the global random state (dropout, drop
path) is saved with each checkpoint.  On one CPU process a run interrupted (after an epoch or mid-epoch, by SIGINT
or SIGTERM) and resumed ends with bitwise the weights of the uninterrupted run.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from . import checkpoint as ckpt
from . import distributed as D
from .data import DataInfo, ShardSampler, data_source, load_data
from .errors import TrainError
from .progress import ProgressBar
from ..inference import to_channels_last
from ..layers import missing_dirs, write_all_or_none

__all__ = ["TrainConfig", "CosineWarmup", "RunResult", "train", "build_model", "param_groups", "evaluate",
           "config_for_resume", "RESUME_MUTABLE", "CHECKPOINT", "INTERRUPTED"]

CHECKPOINT = "last.pt"
INTERRUPTED = 130
# options a resumed run may change (the rest would make it another run)
RESUME_MUTABLE = ("epochs", "workers", "device", "progress", "stop_after_epoch", "compile", "eval_batch_size")


@dataclass
class TrainConfig:
    """Every option of a run (the command line's, one to one)."""

    model: str = "resnet18"
    data: str = ""
    out: str = ""
    epochs: int = 10
    attn: str | None = None
    insert: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    batch_size: int = 32
    eval_batch_size: int | None = None
    opt: str = "adamw"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    warmup_epochs: float | None = None
    min_lr: float = 0.0
    label_smoothing: float = 0.1
    ema: float | None = None
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    input_size: int | None = None
    in_chans: int | None = None
    hflip: float | None = None
    limit: int | None = None
    workers: int | None = None
    device: str | None = None
    sync_bn: bool = False
    fsdp: bool = False
    stop_after_epoch: int | None = None
    progress: bool = True

    def resolved(self) -> "TrainConfig":
        """The defaults that depend on other options filled in: ``lr`` (SGD 0.1 x B/256, AdamW 1e-3),
        ``weight_decay`` (SGD 1e-4, AdamW 0.05), ``warmup_epochs`` (a tenth of the epochs, at most 5)."""
        c = dataclasses.replace(self, model_kwargs=dict(self.model_kwargs))
        if c.opt not in ("sgd", "adamw"):
            raise TrainError(f"--opt must be sgd or adamw, got {c.opt!r}")
        if c.lr is None:
            c.lr = 0.1 * c.batch_size / 256 if c.opt == "sgd" else 1e-3
        if c.weight_decay is None:
            c.weight_decay = 1e-4 if c.opt == "sgd" else 0.05
        if c.warmup_epochs is None:
            c.warmup_epochs = min(5.0, 0.1 * c.epochs)
        optional = ("eval_batch_size", "input_size", "in_chans", "limit", "workers", "stop_after_epoch", "ema",
                    "hflip")
        for name, lo in (("epochs", 1), ("batch_size", 1), ("seed", 0), ("eval_batch_size", 1), ("input_size", 1),
                         ("in_chans", 1), ("limit", 1), ("workers", 0), ("stop_after_epoch", 1)):
            v = getattr(c, name)
            if (v is not None or name not in optional) and (not isinstance(v, int) or isinstance(v, bool) or v < lo):
                raise TrainError(f"--{name.replace('_', '-')} must be an integer >= {lo}, got {v!r}")
        # (name, low, high or None, whether low and high are allowed)
        for name, lo, hi, lo_in, hi_in in (("lr", 0, None, False, False), ("weight_decay", 0, None, True, False),
                                           ("warmup_epochs", 0, None, True, False), ("min_lr", 0, None, True, False),
                                           ("momentum", 0, 1, True, False), ("label_smoothing", 0, 1, True, False),
                                           ("ema", 0, 1, False, False), ("hflip", 0, 1, True, True)):
            v = getattr(c, name)
            if v is None and name in optional:
                continue
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
                (v > lo or (lo_in and v == lo)) and (hi is None or v < hi or (hi_in and v == hi))
            if not ok:
                where = (f"{'>=' if lo_in else '>'} {lo}" if hi is None else
                         f"in {'[' if lo_in else '('}{lo}, {hi}{']' if hi_in else ')'}")
                what = {"ema": " (the EMA decay)", "hflip": " (the flip probability)"}.get(name, "")
                raise TrainError(f"--{name.replace('_', '-')}{what} must be a number {where}, got {v!r}")
        if c.min_lr > c.lr:
            raise TrainError(f"--min-lr {c.min_lr:g} is above the peak --lr {c.lr:g}: the schedule decays from lr to "
                             f"min-lr")
        if c.fsdp and c.ema is not None:
            raise TrainError("--ema keeps a full copy of the weights on every process; it does not combine with --fsdp")
        c.attn = _attn_or_none(c.attn)
        c.data = data_source(c.data)
        return c

    @property
    def title(self) -> str:
        """The run in words: ``resnet18 + cbam`` (the model, its attention block, an inserted block)."""
        return self.model + "".join(f" + {v}" for v in (_attn_or_none(self.attn), self.insert) if v)


def _attn_or_none(attn: str | None) -> str | None:
    """``--attn``, with ``none`` (any case) and ``""`` meaning no attention block."""
    return None if attn is None or attn.lower() in ("none", "") else attn


class CosineWarmup:
    """Learning-rate factor of step ``t`` (of ``total``): linear from ~0 to 1 over ``warmup`` steps, then a cosine
    from 1 to ``min_factor``."""

    def __init__(self, total: int, warmup: int, min_factor: float = 0.0):
        self.total, self.warmup, self.min_factor = max(1, total), max(0, warmup), min_factor

    def __call__(self, t: int) -> float:
        if t < self.warmup:
            return (t + 1) / (self.warmup + 1)
        p = min(1.0, (t - self.warmup) / max(1, self.total - self.warmup))
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * p))

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "warmup": self.warmup, "min_factor": self.min_factor}


@dataclass
class RunResult:
    run_dir: str
    epochs_done: int
    history: list[dict[str, Any]]
    interrupted: bool = False
    params: int = 0
    data: DataInfo | None = None

    @property
    def final_top1(self) -> float:
        return self.history[-1]["val_top1"] if self.history else float("nan")


# ---------------------------------------------------------------------------------------------------- the model
def _parse_insert(spec: str) -> tuple[str, dict[str, Any]]:
    block, _, where = spec.partition("@")
    where = where or "se"
    from visionblocks.surgery.insert import PRESETS
    return block, ({"preset": where} if where in PRESETS else {"after": where})


def build_model(cfg: TrainConfig, num_classes: int, in_chans: int, input_size: int) -> nn.Module:
    """``create_model(cfg.model, num_classes, in_chans, attn=cfg.attn, pretrained=..., **cfg.model_kwargs)``, then
    ``insert`` when asked; bad names and arguments as TrainError, and so is a model whose output is not class logits
    of shape (batch, num_classes) on ``in_chans`` x ``input_size`` images (checked once, here)."""
    from visionblocks import create_model, insert, list_models
    if cfg.model not in list_models():
        import difflib
        close = difflib.get_close_matches(cfg.model, list_models(), n=3, cutoff=0.5)
        raise TrainError(f"unknown model {cfg.model!r}" + (f"; did you mean: {', '.join(close)}?" if close else ""))
    kwargs = dict(cfg.model_kwargs)
    if kwargs.get("features_only", False) is not False:  # (out_indices, output_fmt without it: create_model refuses)
        raise TrainError("--model-kwargs features_only: a backbone option (feature maps, not class logits); training "
                         "needs the classifier, drop it")
    if cfg.attn is not None:
        kwargs["attn"] = cfg.attn
    try:
        model = create_model(cfg.model, num_classes=num_classes, in_chans=in_chans, pretrained=cfg.pretrained,
                             **kwargs)
    except TypeError as e:
        msg = str(e)
        if cfg.attn is not None and "'attn'" in msg:
            raise TrainError(f"model {cfg.model!r} takes no attention block (--attn); --insert BLOCK puts one "
                             f"into any model") from None
        raise TrainError(f"model {cfg.model!r}: {msg.splitlines()[0]}") from None
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise TrainError(f"model {cfg.model!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if cfg.insert:
        block, where = _parse_insert(cfg.insert)
        try:
            insert(model, block, example_input=torch.zeros(1, in_chans, input_size, input_size), **where)
        except (ValueError, TypeError) as e:
            raise TrainError(f"--insert {cfg.insert}: {str(e).splitlines()[0]}") from None
    _check_logits(model, cfg.model, num_classes, in_chans, input_size)
    return model


def _check_logits(model: nn.Module, name: str, num_classes: int, in_chans: int, input_size: int) -> None:
    """One forward of two blank images (eval mode, no gradient, the random state untouched): the output must be
    class logits of shape (2, num_classes); else a TrainError before anything is written."""
    shape = f"{in_chans}x{input_size}x{input_size}"
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = model(torch.zeros(2, in_chans, input_size, input_size))
    except (ValueError, TypeError, RuntimeError) as e:
        raise TrainError(f"model {name!r} fails on {shape} input: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise TrainError(f"model {name!r} gives {got} for 2 images, not class logits of shape (2, {num_classes}); "
                         f"train needs a classifier")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: with weight decay, and without it for the names of ``model.no_weight_decay()`` (default: the
    parameters with fewer than 2 dimensions)."""
    if hasattr(model, "no_weight_decay"):
        skip = set(model.no_weight_decay())
    else:
        skip = {n for n, p in model.named_parameters() if p.ndim <= 1}
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if n in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.opt == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


# ---------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, dinfo: D.DistInfo, amp: bool = False,
             channels_last: bool = False, lockstep: bool = False) -> dict[str, float]:
    """Loss, top-1 and top-5 (%) over the loader, summed over the ranks.  ``lockstep`` (a sharded model, whose
    forward is collective): every rank runs as many forwards as the rank with the most batches (uncounted
    repeats of its last batch on the others)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, n
    extra = 0
    if lockstep and dinfo.distributed:
        n = torch.tensor([len(loader)], device=device)
        extra = int(D.all_reduce_max(n.clone(), dinfo).item()) - len(loader)
    x = None
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(x)
        out = out.float()
        k = min(5, out.shape[1])
        top = out.topk(k, dim=1).indices
        hit = top == y[:, None]
        sums += torch.stack([F.cross_entropy(out, y, reduction="sum").double(), hit[:, 0].sum().double(),
                             hit.any(1).sum().double(), torch.tensor(float(len(y)), dtype=torch.float64,
                                                                     device=device)])
    for _ in range(extra):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(x if x is not None else loader.dataset[0][0][None].to(device))
    D.all_reduce_sum(sums, dinfo)
    model.train(was_training)
    n = max(1.0, sums[3].item())
    return {"loss": sums[0].item() / n, "top1": 100 * sums[1].item() / n, "top5": 100 * sums[2].item() / n}


# ---------------------------------------------------------------------------------------------------- signals
class _StopFlag:
    """SIGINT/SIGTERM set a flag the loop checks after each step (a second SIGINT interrupts at once)."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handler)
            except ValueError:  # not the main thread: no handlers
                pass
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


# ---------------------------------------------------------------------------------------------------- logs
_LOG_FIELDS = ("epoch", "train_loss", "val_loss", "val_top1", "val_top5", "ema_top1", "ema_top5", "lr", "epoch_s",
               "images_per_s")


def _write_logs(run_dir: str, history: list[dict[str, Any]], title: str) -> None:
    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=_LOG_FIELDS, extrasaction="ignore")
            w.writeheader()
            for r in history:
                w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in _LOG_FIELDS})

    write_all_or_none([(os.path.join(run_dir, "log.csv"), write_csv),
                       (os.path.join(run_dir, "log.json"), _json_writer(history))])
    from .plots import have_matplotlib, plot_learning_curves
    if have_matplotlib():
        plot_learning_curves(history, os.path.join(run_dir, "curves.png"), title)


def _json_writer(obj: Any):
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, default=str)
    return write


def _write_json(path: str, obj: Any) -> None:
    write_all_or_none([(path, _json_writer(obj))])


def config_for_resume(run_dir: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The configuration of the run in ``run_dir`` (from its checkpoint), with ``overrides`` of the options a
    resumed run may change (``RESUME_MUTABLE``); any other override that differs is refused (another run).
    ``stop_after_epoch`` belongs to one invocation: it is not carried over (the resumed run goes on to ``epochs``
    unless ``overrides`` gives it again)."""
    return _resume_config(ckpt.load_checkpoint(os.path.join(run_dir, CHECKPOINT)), run_dir, overrides)


def _resume_config(ck: dict[str, Any], run_dir: str, overrides: dict[str, Any] | None) -> TrainConfig:
    """:func:`config_for_resume` of an already loaded checkpoint ``ck``."""
    saved = dict(ck["config"])
    saved.pop("stop_after_epoch", None)  # per invocation: the run that stopped there asked for it, not this one
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}})
    differ = []
    for k, v in (overrides or {}).items():
        if v is None or k == "out":
            continue
        if k == "attn" and str(v).lower() == "none":
            v = None
        if k in RESUME_MUTABLE:
            setattr(cfg, k, v)
        elif k == "data" and data_source(v) == data_source(cfg.data):
            continue  # the same data, named from another folder or by another spelling of its path
        elif getattr(cfg, k) != v:
            differ.append(f"--{k.replace('_', '-')} {getattr(cfg, k)!r}, not {v!r}")
    if differ:
        raise TrainError(f"--resume {run_dir}: that run was trained with {', and with '.join(differ)} (another run; "
                         f"use a new --out to start it)")
    done = ck["epoch"] + (1 if ck["step_in_epoch"] else 0)  # epochs done or begun
    if cfg.epochs < done:
        begun = f" and part of epoch {done}" if ck["step_in_epoch"] else ""
        raise TrainError(f"--epochs {cfg.epochs}: the run in {run_dir} has already done {ck['epoch']} epoch(s)"
                         f"{begun}; give --epochs {done} or more, or leave it out (the run's {saved.get('epochs')})")
    cfg.out = run_dir
    return cfg


# ---------------------------------------------------------------------------------------------------- the run
def train(cfg: TrainConfig, resume: bool = False, *, on_step: Callable[[int, int], bool] | None = None,
          stream=None) -> RunResult:
    """Train as ``cfg`` says, writing ``cfg.out/{last.pt,config.json,log.csv,log.json,curves.png}`` (rank 0).

    ``resume``: continue the run in ``cfg.out`` from its checkpoint (see :func:`config_for_resume` for the
    configuration).  ``on_step(epoch, step)`` is called after every step; returning True stops the run as an
    interruption does (tests).  Bad input raises :class:`TrainError` before anything is written.
    """
    cfg.resolved()  # bad values are named as given, before anything is read or written
    out = cfg.out
    if not out:
        raise TrainError("--out RUN_DIR is required (the run's checkpoints and logs go there)")
    _check_out_dir(out)
    ck_path = os.path.join(out, CHECKPOINT)
    ck = None
    if resume:  # the saved recipe, up to the options a resume may change: the same check as --resume's
        ck = ckpt.load_checkpoint(ck_path)
        cfg = _resume_config(ck, out, dataclasses.asdict(cfg))
        if cfg.stop_after_epoch is not None and cfg.stop_after_epoch <= ck["epoch"]:
            raise TrainError(f"--stop-after-epoch {cfg.stop_after_epoch}: the run in {out} has already done "
                             f"{ck['epoch']} epoch(s); give a later epoch, or none to train to --epochs {cfg.epochs}")
    cfg = cfg.resolved()
    stream = stream or sys.stderr
    dinfo = D.setup(cfg.device)
    try:
        if not resume and os.path.exists(ck_path):
            raise TrainError(f"{out} already holds a run; continue it with --resume {out}, or choose another --out")
        elif not resume and os.path.exists(os.path.join(out, "config.json")) and \
                not _same_run(os.path.join(out, "config.json"), cfg):
            raise TrainError(f"{out} already holds another run (stopped before its first checkpoint); choose another "
                             f"--out")
        # (the same run, killed before its first checkpoint, starts again: there is nothing of it to lose)
        missing = missing_dirs(out)[0]
        created = missing[-1] if missing else None  # the outermost folder this run makes
        had_config = os.path.exists(os.path.join(out, "config.json"))
        D.barrier(dinfo)  # every rank has looked before rank 0 writes
        try:
            return _run(cfg, dinfo, ck, on_step, stream)
        except BaseException:
            if dinfo.is_main and not os.path.exists(ck_path):
                _discard_unstarted(out, created, had_config)
            raise
    finally:
        D.cleanup(dinfo)


def _discard_unstarted(out: str, created: str | None, had_config: bool) -> None:
    """A run that failed before its first checkpoint leaves nothing that would block the corrected command: the
    folders this invocation made go (``created``: the outermost, e.g. compare's ``OUT/<variant>`` of
    ``OUT/<variant>/seed0``); in a directory that was there before, only the ``config.json`` this invocation added."""
    if created:
        shutil.rmtree(created, ignore_errors=True)
    elif not had_config:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(out, "config.json"))


def _check_out_dir(out: str) -> None:
    """Refuse an ``--out`` that cannot become the run's folder before any data or model is loaded (it failed with a
    traceback when the first file was written): a file, a path under a file, a folder this process cannot write."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise TrainError(f"--out {out} is a file, not a folder")
    parent = missing_dirs(out)[1]
    if not os.path.isdir(parent):
        raise TrainError(f"--out {out}: {parent} is a file, so the folder cannot be made")
    try:  # (tried, not asked: os.access says yes to root, and /proc or a read-only mount still refuse)
        tempfile.TemporaryDirectory(dir=parent).cleanup()
    except OSError as e:
        raise TrainError(f"--out {out}: cannot make a folder in {parent} ({e.strerror or e})") from None


def _same_run(config_json: str, cfg: TrainConfig) -> bool:
    """Whether ``config_json`` (a run directory's) describes the run ``cfg`` (up to the options a resume may change)."""
    try:
        with open(config_json) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    if not isinstance(saved, dict):
        return False
    mine = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    if isinstance(saved.get("data"), str):  # (a relative path, as configs before absolute paths wrote it)
        saved["data"] = data_source(saved["data"])
    return all(saved.get(k) == v for k, v in mine.items() if k not in RESUME_MUTABLE and k != "out")


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np
        np.random.seed(seed % 2**32)
    except ImportError:
        pass


def _restore_partial(ck: dict, dinfo: D.DistInfo, empty: dict[str, Any]) -> dict[str, Any]:
    """This rank's loss and image sums of the interrupted epoch: its own when the run had as many processes; on
    another number of processes, rank 0 takes all of them (the epoch's mean loss stays right)."""
    parts = ck.get("partial_ranks") or [ck.get("partial") or empty]
    if len(parts) == dinfo.world_size:
        return dict(parts[dinfo.rank])
    if dinfo.rank > 0:
        return dict(empty)
    return {"loss_sum": sum(p["loss_sum"] for p in parts), "images": sum(p["images"] for p in parts),
            "time": max(p["time"] for p in parts)}


def _run(cfg: TrainConfig, dinfo: D.DistInfo, ck: dict | None, on_step, stream) -> RunResult:
    from visionblocks.models import resolve_data_config
    dev = dinfo.device
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    _seed_all(cfg.seed)
    try:
        data_cfg = resolve_data_config(cfg.model)
    except (ValueError, KeyError) as e:
        raise TrainError(str(e).splitlines()[0]) from None
    train_ds, val_ds, info = load_data(cfg.data, data_cfg, input_size=cfg.input_size, in_chans=cfg.in_chans,
                                       seed=cfg.seed, hflip=cfg.hflip, limit=cfg.limit)
    identity = {"model": cfg.model, "model_kwargs": cfg.model_kwargs, "attn": cfg.attn, "insert": cfg.insert,
                "classes": info.classes, "in_chans": info.in_chans, "input_size": info.input_size,
                "data_kind": info.kind}
    if ck is not None:
        ckpt.check_identity(ck["identity"], identity, f"checkpoint {os.path.join(cfg.out, CHECKPOINT)}")
    if cfg.batch_size % dinfo.world_size:
        raise TrainError(f"--batch-size {cfg.batch_size} (the global batch) must divide by the {dinfo.world_size} "
                         f"processes")
    local_bs = cfg.batch_size // dinfo.world_size
    sampler = DistributedSampler(train_ds, num_replicas=dinfo.world_size, rank=dinfo.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    steps_per_epoch = len(sampler) // local_bs
    if steps_per_epoch == 0:
        raise TrainError(f"--batch-size {cfg.batch_size} is larger than the training split ({info.num_train} images)")
    total_steps = steps_per_epoch * cfg.epochs

    model = build_model(cfg, info.num_classes, info.in_chans, info.input_size)
    if local_bs == 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        per = f" per process ({dinfo.world_size} processes)" if dinfo.distributed else ""
        raise TrainError(f"--batch-size {cfg.batch_size} gives 1 image per step{per}: {cfg.title} has batch norm "
                         f"layers, which need 2 or more images of a batch in training")
    params = sum(p.numel() for p in model.parameters())
    ema = None
    if cfg.ema is not None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    where = f"checkpoint {os.path.join(cfg.out, CHECKPOINT)}"
    if ck is not None:  # everything is checked before anything is loaded
        ckpt.check_state_dict(ck["model"], model, "model", where)
        if (ema is None) != (ck.get("model_ema") is None):
            raise TrainError(f"{where}: the run {'had no' if ema is not None else 'had an'} EMA; --ema must match")
        if ema is not None:
            ckpt.check_state_dict(ck["model_ema"], ema, "EMA", where)
    model.to(dev)
    if ema is not None:
        ema.to(dev)
    if cfg.channels_last:  # the convolution weights (model.to(memory_format=...) refuses 5-D kernel banks)
        to_channels_last(model)
        if ema is not None:  # the EMA copy is evaluated on the same channels-last batches
            to_channels_last(ema.module)
    if ck is not None and not cfg.fsdp:
        try:
            opt_probe = _optimizer(cfg, model)
            opt_probe.load_state_dict(ck["optimizer"])  # refuses other group sizes before the real load
        except (ValueError, KeyError, RuntimeError) as e:
            raise TrainError(f"{where}: the optimizer state does not match ({e}); nothing was loaded") from None
    if ck is not None:
        model.load_state_dict(ck["model"])  # full tensors, before any sharding
        if ema is not None:
            ema.load_state_dict(ck["model_ema"])
    if cfg.fsdp:
        model = D.shard_model(model, dinfo, cfg.sync_bn)  # before the optimizer: it must see the shards
    optimizer = _optimizer(cfg, model)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    schedule = CosineWarmup(total_steps, warmup, cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0)
    history: list[dict[str, Any]] = []
    start_epoch, start_step, global_step = 0, 0, 0
    partial = {"loss_sum": 0.0, "images": 0, "time": 0.0}
    if ck is not None:
        if cfg.fsdp:
            try:
                D.load_full_optimizer_state(model, optimizer, ck["optimizer"])
            except (ValueError, KeyError, RuntimeError) as e:
                raise TrainError(f"{where}: the optimizer state does not match ({str(e).splitlines()[0]})") from None
        else:
            optimizer.load_state_dict(ck["optimizer"])
        history = list(ck["history"])
        start_epoch, start_step, global_step = ck["epoch"], ck["step_in_epoch"], ck["global_step"]
        partial = _restore_partial(ck, dinfo, partial)
        if ck["schedule"]["total"] != schedule.total and dinfo.is_main:
            print(f"note: --epochs changed from {ck['config']['epochs']} to {cfg.epochs}: the learning-rate "
                  f"schedule is stretched from here on", file=stream)
        rngs = ck.get("rng_ranks")
        if rngs is not None and len(rngs) == dinfo.world_size:  # every rank's own random state (dropout, drop path)
            ckpt.set_rng_state(rngs[dinfo.rank])
        elif dinfo.rank == 0:
            ckpt.set_rng_state(ck["rng"])
        else:  # resumed on more processes than it ran on: the new ranks draw from a fresh seed
            torch.manual_seed(cfg.seed + 1_000_003 * dinfo.rank + global_step)
    elif dinfo.distributed:
        torch.manual_seed(cfg.seed + 1_000_003 * dinfo.rank)  # after the (identical) initialisation
    base_lrs = [cfg.lr for _ in optimizer.param_groups]

    net = model if cfg.fsdp else D.wrap_model(model, dinfo, cfg.sync_bn)
    step_fn = torch.compile(net) if cfg.compile else net
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    workers = cfg.workers if cfg.workers is not None else (0 if info.kind != "folder" else min(8, os.cpu_count() or 1))
    pin = dev.type == "cuda"
    eval_bs = cfg.eval_batch_size or max(local_bs, 64)
    val_loader = DataLoader(val_ds, batch_size=eval_bs, sampler=ShardSampler(len(val_ds), dinfo.rank,
                                                                                 dinfo.world_size),
                            num_workers=workers, pin_memory=pin, generator=torch.Generator().manual_seed(cfg.seed))
    main = dinfo.is_main
    if main:
        os.makedirs(cfg.out, exist_ok=True)
        _write_json(os.path.join(cfg.out, "config.json"), {**dataclasses.asdict(cfg), "data_info": dataclasses.asdict(info)})
        if ck is None:
            for note in info.notes:
                print(f"note: {note}", file=stream)
    title = cfg.title

    def save(epoch: int, step_in_epoch: int) -> None:
        # every rank's random state and partial-epoch sums, so that a resumed run under torchrun continues each
        # rank exactly (rank 0's alone would give the other ranks other dropout masks and lose their loss sums)
        rngs = D.gather_objects(ckpt.rng_state(), dinfo)
        partials = D.gather_objects(dict(partial), dinfo)
        if cfg.fsdp:  # the full tensors, gathered on rank 0 (every rank takes part)
            model_sd, opt_sd = D.full_state_dicts(model, optimizer)
        else:
            model_sd, opt_sd = model.state_dict(), optimizer.state_dict()
        if main:
            ckpt.atomic_save({
                "format": ckpt.FORMAT, "version": ckpt.VERSION, "identity": identity, "config": dataclasses.asdict(cfg),
                "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
                "model": model_sd, "model_ema": None if ema is None else ema.state_dict(),
                "optimizer": opt_sd, "schedule": schedule.state_dict(), "rng": rngs[0],
                "history": history, "partial": partial,
                "rng_ranks": rngs if dinfo.distributed else None,
                "partial_ranks": partials if dinfo.distributed else None,
            }, os.path.join(cfg.out, CHECKPOINT))
        D.barrier(dinfo)

    interrupted = False
    with _StopFlag() as stop:
        for epoch in range(start_epoch, cfg.epochs):
            sampler.set_epoch(epoch)
            train_ds.set_epoch(epoch)
            first = start_step if epoch == start_epoch else 0
            if first == 0:
                partial = {"loss_sum": 0.0, "images": 0, "time": 0.0}
            order = list(sampler)[first * local_bs: steps_per_epoch * local_bs]
            loader = DataLoader(train_ds, batch_size=local_bs, sampler=order, drop_last=True, num_workers=workers,
                                pin_memory=pin, generator=torch.Generator().manual_seed(cfg.seed + epoch))
            bar = ProgressBar(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", stream,
                              enabled=main and cfg.progress, start=first)
            net.train()
            t0 = time.perf_counter()
            step = first
            for x, y in loader:
                factor = schedule(global_step)
                for g, lr in zip(optimizer.param_groups, base_lrs):
                    g["lr"] = lr * factor
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.amp):
                    loss = criterion(step_fn(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                global_step += 1
                step += 1
                lv = loss.item()
                partial["loss_sum"] += lv * len(y)
                partial["images"] += len(y)
                bar.update(len(y) * dinfo.world_size, lv)
                want_stop = bool(on_step and on_step(epoch, step)) or stop.signum is not None
                if D.any_rank(want_stop, dinfo) and step < steps_per_epoch:
                    partial["time"] += time.perf_counter() - t0
                    save(epoch, step)
                    interrupted = True
                    break
            if interrupted:
                bar.close("interrupted")
                break
            partial["time"] += time.perf_counter() - t0
            loss_sum = D.all_reduce_sum(torch.tensor([partial["loss_sum"], float(partial["images"])],
                                                     dtype=torch.float64), dinfo)
            D.broadcast_buffers(model, dinfo)  # every rank evaluates the model rank 0 saves (its BN statistics)
            val = evaluate(model, val_loader, dev, dinfo, cfg.amp, cfg.channels_last, lockstep=cfg.fsdp)
            ev = None
            if ema is not None:
                D.broadcast_buffers(ema, dinfo)
                ev = evaluate(ema.module, val_loader, dev, dinfo, cfg.amp, cfg.channels_last)
            row = {"epoch": epoch + 1, "train_loss": loss_sum[0].item() / max(1.0, loss_sum[1].item()),
                   "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
                   "ema_top1": ev["top1"] if ev else None, "ema_top5": ev["top5"] if ev else None,
                   "lr": optimizer.param_groups[0]["lr"], "epoch_s": round(partial["time"], 3),
                   "images_per_s": round(loss_sum[1].item() / max(partial["time"], 1e-9), 1)}
            history.append(row)
            bar.close(f"val top-1 {val['top1']:.2f}% top-5 {val['top5']:.2f}%"
                      + (f" (EMA {ev['top1']:.2f}%)" if ev else ""))
            partial = {"loss_sum": 0.0, "images": 0, "time": 0.0}
            save(epoch + 1, 0)
            if main:
                _write_logs(cfg.out, history, title)
            stop_here = cfg.stop_after_epoch is not None and epoch + 1 >= cfg.stop_after_epoch
            if (D.any_rank(stop.signum is not None, dinfo) or stop_here) and epoch + 1 < cfg.epochs:
                interrupted = True
                break
    done = history[-1]["epoch"] if history else 0
    return RunResult(cfg.out, done, history, interrupted, params, info)
