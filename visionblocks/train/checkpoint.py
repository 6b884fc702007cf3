"""Checkpoints of a training run: written atomically, checked whole before anything is loaded.

A checkpoint (``RUN_DIR/last.pt``) holds the run's identity (model name and arguments, classes, input size and
channels, the recipe), where it stopped (epoch, step within the epoch, global step), and every state needed to
continue exactly: model, optimizer, learning-rate schedule, EMA, the random states (torch, numpy, python) and the
log so far.  It is written to a temporary file in the same directory and moved over the old one with
``os.replace``, so a crash leaves the previous checkpoint intact.

Loading refuses, with a :class:`~visionblocks.train.errors.TrainError` and before any module is touched, a file that
is not a readable checkpoint of this format, one of another model or data, and one whose tensors do not match the
model's names and shapes.
"""
from __future__ import annotations

import os
import random
from typing import Any

import torch
import torch.nn as nn

from .errors import TrainError
from ..layers import write_all_or_none

__all__ = ["FORMAT", "VERSION", "IDENTITY_KEYS", "atomic_save", "load_checkpoint", "check_identity",
           "check_state_dict", "rng_state", "set_rng_state"]

FORMAT = "visionblocks-train"
VERSION = 1
IDENTITY_KEYS = ("model", "model_kwargs", "attn", "insert", "classes", "in_chans", "input_size", "data_kind")


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` through a temporary file in the same directory (flushed to the disk) and
    ``os.replace``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_all_or_none([(path, lambda tmp: torch.save(obj, tmp))], fsync=True)


def load_checkpoint(path: str) -> dict[str, Any]:
    """The checkpoint at ``path`` (on the CPU), or a TrainError saying why it cannot be one."""
    if not os.path.isfile(path):
        raise TrainError(f"no checkpoint at {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)  # plain containers, numbers and tensors
    except Exception as e:
        raise TrainError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); "
                         f"nothing was loaded") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise TrainError(f"{path} is not a visionblocks training checkpoint")
    if ck.get("version") != VERSION:
        raise TrainError(f"checkpoint {path} has format version {ck.get('version')}, this visionblocks reads {VERSION}")
    missing = [k for k in ("identity", "config", "epoch", "step_in_epoch", "global_step", "model", "optimizer",
                           "schedule", "rng", "history") if k not in ck]
    if missing:
        raise TrainError(f"checkpoint {path} is incomplete (missing {', '.join(missing)}); nothing was loaded")
    return ck


def check_identity(saved: dict[str, Any], current: dict[str, Any], where: str) -> None:
    """Refuse a checkpoint of another model or data (the first difference is named)."""
    for k in IDENTITY_KEYS:
        if saved.get(k) != current.get(k):
            raise TrainError(f"{where} is from another run: {k} is {saved.get(k)!r} there, {current.get(k)!r} here")


def check_state_dict(saved: dict[str, torch.Tensor], module: nn.Module, what: str, where: str) -> None:
    """The saved tensors must have exactly the module's names and shapes."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    if missing or unexpected:
        raise TrainError(f"{where}: the {what} does not match this model (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}); nothing was loaded")
    for k, v in own.items():
        s = saved[k]
        if not isinstance(s, torch.Tensor) or s.shape != v.shape:
            raise TrainError(f"{where}: {what} tensor {k} has shape {tuple(getattr(s, 'shape', ()))}, the model "
                             f"{tuple(v.shape)}; nothing was loaded")


def rng_state() -> dict[str, Any]:
    """The random states a run draws from (torch CPU and CUDA, numpy, python)."""
    out: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    try:
        import numpy as np
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        out["numpy"] = (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
    except ImportError:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "numpy" in state:
        try:
            import numpy as np
        except ImportError:  # saved where numpy was: here nothing draws from its generator
            np = None
        if np is not None:
            kind, keys, pos, has_gauss, gauss = state["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
