"""Non-persistent buffers that are functions of a module's constructor arguments (index maps, masks, identity
kernels), kept valid wherever the module's tensors go.

Such a buffer is not in the state dict, so a network built on the meta device and materialised with
``to_empty`` (then ``load_state_dict``: how large models are loaded, and FSDP's deferred initialisation) would keep
uninitialised memory in it (an index out of bounds, or an output off by 1e20).  A module derived from
:class:`DerivedBuffers` says how to compute them; they are registered on the default device and rebuilt after
every ``_apply`` (``to``, ``to_empty``, ``cuda``, ``double``, ``share_memory``, ...): their values are written into
the tensors the operation made (its device, dtype and storage).  A network built on the meta device and loaded
with ``load_state_dict(sd, assign=True)`` (no ``to_empty``: PyTorch's recipe for loading large models) takes its
parameters' tensors from the state dict; the derived buffers, still on the meta device then, are computed once the
load has put the module's parameters on a real device.
"""
from __future__ import annotations

import itertools

import torch

__all__ = ["DerivedBuffers"]


class DerivedBuffers:
    """Mixin (before ``nn.Module`` or its subclass among the bases) for modules with derived buffers.

    A subclass implements :meth:`derived_buffers` and calls :meth:`init_derived_buffers` in ``__init__`` once the
    attributes it reads are set.  A buffer the module has deleted (e.g. after re-parameterization) stays deleted.
    """

    def derived_buffers(self) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        """name -> value of every derived buffer, computed from the module's attributes (called with the CPU as
        the default device)."""
        raise NotImplementedError

    def _computed_buffers(self) -> dict[str, torch.Tensor]:
        with torch.device("cpu"):  # (also inside a ``torch.device("meta")`` context: meta tensors hold no values)
            return self.derived_buffers()

    def init_derived_buffers(self) -> None:
        """Register the derived buffers (non-persistent) on the default device (``torch.device`` context)."""
        device = torch.empty(0).device
        for name, value in self._computed_buffers().items():
            self.register_buffer(name, value.to(device), persistent=False)
        if _materialize_meta_buffers not in self._load_state_dict_post_hooks.values():
            self.register_load_state_dict_post_hook(_materialize_meta_buffers)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for name, value in self._computed_buffers().items():
            buf = self._buffers.get(name)
            if buf is None or buf.is_meta:
                continue
            if buf.is_inference() and not torch.is_inference_mode_enabled():
                # built under inference_mode: such a tensor cannot be written outside it (torch.nn's layers only
                # replace theirs), so a new one on its device and dtype (shared if it was)
                new = value.to(device=buf.device, dtype=buf.dtype)
                self._buffers[name] = new.share_memory_() if buf.is_shared() else new
            else:  # the values written into the tensor ``fn`` made (its device, dtype and storage:
                with torch.no_grad():  # ``share_memory_`` keeps it shared)
                    buf.copy_(value)
        return self


def _materialize_meta_buffers(module: DerivedBuffers, incompatible_keys) -> None:
    """``load_state_dict`` post-hook: derived buffers still on the meta device, in a module whose loaded tensors
    are now on a real device (``assign=True`` on a meta-built module), are computed there (their dtype kept)."""
    buffers = module._buffers
    if not any(b is not None and b.is_meta for b in buffers.values()):
        return
    device = next((t.device for t in itertools.chain(module.parameters(), module.buffers()) if not t.is_meta), None)
    if device is None:  # nothing real yet (a load that left the module on meta)
        return
    for name, value in module._computed_buffers().items():
        buf = buffers.get(name)
        if buf is not None and buf.is_meta:
            buffers[name] = value.to(device=device, dtype=buf.dtype)
