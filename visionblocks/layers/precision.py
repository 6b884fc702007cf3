"""Where a block computes part of its forward above its tensors' precision: a product or a normalisation whose
low-precision rounding the rest of the block would blow up (EMSA's instance-normalised map, AFT's factored
exponentials), computed in float32 at least, also under ``torch.autocast`` (which would round the products to its
own dtype), and rounded once afterwards."""
from __future__ import annotations

import contextlib

import torch

__all__ = ["float32_at_least"]


@contextlib.contextmanager
def float32_at_least(*tensors: torch.Tensor):
    """Yield ``tensors`` in float32 at least (float64 stays float64), with ``torch.autocast`` switched off on their
    device inside the block; round the results back to the dtype the caller needs (``.to(dtype)``)."""
    device = tensors[0].device.type
    acc = torch.promote_types(tensors[0].dtype, torch.float32)
    autocast = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
    with torch.autocast(device, enabled=False) if autocast else contextlib.nullcontext():
        yield tuple(t.to(acc) for t in tensors)
