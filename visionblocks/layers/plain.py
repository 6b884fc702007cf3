"""When a block may skip calling a child layer.  Many blocks run a child's weights directly (``F.linear`` on a 1x1
convolution's weight, a token linear as ``baddbmm``, stacked weights of sibling layers) because it is faster than
the child's own forward.  That is only the same thing as calling the child while the child is a plain layer: a
forward hook or pre-hook on it (user hooks, ``torch.nn.utils.prune``, the old ``weight_norm``), a global module
hook, or a replaced layer (``torch.ao.quantization.quantize_dynamic`` swaps ``nn.Linear`` for a quantized class
whose ``weight`` is a method) all need the child to be called as a module.  :func:`is_plain` is the one test
the blocks use to choose between their fast path and calling the child."""
from __future__ import annotations

import torch.nn as nn
from torch.nn.modules import module as _module

__all__ = ["is_plain", "is_hooked"]

# the global hook dictionaries of torch.nn.modules.module (read defensively: private names; torch mutates them in
# place, so the references stay valid)
_GF, _GFP, _GB, _GBP = (d if isinstance(d, dict) else {} for d in (getattr(_module, name, None) for name in (
    "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks", "_global_backward_pre_hooks")))


def is_hooked(module: nn.Module) -> bool:
    """Whether calling ``module`` would run a hook: its own forward/backward hooks or pre-hooks, or a global module
    hook (``torch.nn.modules.module.register_module_forward_hook`` and the like).  (Plain attribute reads: it runs
    on every forward of the blocks that check it, ~0.1 us.)"""
    d = module.__dict__
    return bool(d.get("_forward_hooks") or d.get("_forward_pre_hooks") or d.get("_backward_hooks")
                or d.get("_backward_pre_hooks") or _GF or _GFP or _GB or _GBP)


def is_plain(module: nn.Module, cls: type[nn.Module]) -> bool:
    """Whether a block may compute ``module``'s output from its parameters instead of calling it: ``module`` is
    exactly a ``cls`` (not a subclass, a quantized or otherwise replaced layer) and calling it would run no
    hook (:func:`is_hooked`).  Parametrized layers (``torch.nn.utils.parametrize``) are subclasses: they are
    called (their parametrized weight would also be right on the fast path, only slower to reach)."""
    return type(module) is cls and not is_hooked(module)
