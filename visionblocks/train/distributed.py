"""Several processes and machines: the same ``visionblocks train`` command under ``torchrun``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` then joins the process group (``nccl``
on GPUs, ``gloo`` on CPUs), picks the device (``cuda:LOCAL_RANK``), and the training loop wraps the model in
``DistributedDataParallel`` (with ``SyncBatchNorm`` on request, GPUs only), shards the data with a
``DistributedSampler``, sums metrics over the ranks, and lets only rank 0 write logs and checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from .errors import TrainError

__all__ = ["DistInfo", "setup", "cleanup", "all_reduce_sum", "any_rank", "barrier", "wrap_model"]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1) and choose the device: ``device`` if
    given (``cpu``, ``cuda``), else CUDA when available."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError(f"--device {kind}: CUDA is not available on this machine")
        dev = torch.device("cuda", local if world > 1 or ":" not in kind else int(kind.split(":")[1]))
        torch.cuda.set_device(dev)
    elif kind == "cpu":
        dev = torch.device("cpu")
    else:
        raise TrainError(f"--device must be cpu or cuda[:i], got {kind!r}")
    info = DistInfo(rank, world, local, dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        info.initialized_here = True
    return info


def cleanup(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``t`` summed over the ranks (``t`` itself with one process)."""
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any (e.g. an interruption seen by one process)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def wrap_model(model: nn.Module, info: DistInfo, sync_bn: bool = False) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` (``SyncBatchNorm`` first when asked); ``model`` alone with one
    process."""
    if sync_bn:
        if info.device.type != "cuda":
            raise TrainError("--sync-bn needs GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
        if info.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids)
