"""Several processes and machines: the same ``visionblocks train`` command under ``torchrun``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` then joins the process group (``nccl``
on GPUs, ``gloo`` on CPUs), picks the device (``cuda:LOCAL_RANK``), and the training loop wraps the model in
``DistributedDataParallel`` (with ``SyncBatchNorm`` on request, GPUs only), shards the data with a
``DistributedSampler``, sums metrics over the ranks, and lets only rank 0 write logs and checkpoints.

With ``--fsdp`` the model is sharded instead (:func:`shard_model`, PyTorch's FSDP2 ``fully_shard``; it runs on
``gloo`` CPUs too): each process keeps a 1/W shard of every parameter, gradient and optimizer state and gathers a
block's parameters just before the block runs.  Checkpoints hold the full (unsharded) tensors, gathered on rank 0.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from .errors import TrainError

__all__ = ["DistInfo", "setup", "cleanup", "all_reduce_sum", "all_reduce_max", "any_rank", "barrier", "gather_objects",
           "broadcast_buffers", "wrap_model", "shard_model", "full_state_dicts", "load_full_optimizer_state"]


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


def all_reduce_max(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``t``'s elementwise maximum over the ranks (``t`` itself with one process)."""
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
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


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` with one process)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: nn.Module, info: DistInfo) -> None:
    """Rank 0's buffers (batch-norm statistics) on every rank.  DDP does this at the start of every training
    forward; the evaluation after an epoch does it first, so that every rank evaluates the model rank 0 saves."""
    if info.distributed:
        for b in module.buffers():
            dist.broadcast(b.data, src=0)


def wrap_model(model: nn.Module, info: DistInfo, sync_bn: bool = False) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` (``SyncBatchNorm`` first when asked); ``model`` alone with one
    process."""
    model = _sync_bn(model, info, sync_bn)
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def _sync_bn(model: nn.Module, info: DistInfo, sync_bn: bool) -> nn.Module:
    if sync_bn:
        if info.device.type != "cuda":
            raise TrainError("--sync-bn needs GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
        if info.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules :func:`shard_model` shards before the whole model: the blocks, i.e. each child of an
    ``nn.Sequential``/``nn.ModuleList`` that holds parameters and is not itself one, outermost only (a block's own
    inner layers stay part of that block's unit: FSDP2 cannot shard a module whose parameters an enclosing unit
    already sharded, and units that small would only add all-gathers)."""
    containers = (nn.Sequential, nn.ModuleList)  # exactly these: a subclass (ConvNormAct) is a block
    units: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    for name, m in model.named_modules():
        if type(m) in containers:
            for key, c in m.named_children():
                path = f"{name}.{key}" if name else key
                if (type(c) in containers or id(c) in seen
                        or next(c.parameters(), None) is None
                        or any(path.startswith(outer + ".") for outer, _ in units)):
                    continue
                seen.add(id(c))
                units.append((path, c))
    return [m for _, m in units]


def shard_model(model: nn.Module, info: DistInfo, sync_bn: bool = False) -> nn.Module:
    """FSDP2: ``fully_shard`` every block (:func:`shard_units`), then the whole model.  Call it before building the
    optimizer (the parameters become sharded ``DTensor`` s)."""
    if not info.distributed:
        raise TrainError("--fsdp shards the model over torchrun's processes; run the command under torchrun "
                         "(torchrun --nproc_per_node=N -m visionblocks.train train ...)")
    from torch.distributed.fsdp import fully_shard
    model = _sync_bn(model, info, sync_bn)
    for m in shard_units(model):
        fully_shard(m)
    fully_shard(model)
    return model


def full_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The sharded model's and optimizer's full state dicts on rank 0, on the CPU (empty on the other ranks; every
    rank must call it).  The model's has the plain module's keys; the optimizer's is keyed by parameter names."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
    return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a full optimizer state dict (from :func:`full_state_dicts`) into the sharded optimizer (every rank)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
