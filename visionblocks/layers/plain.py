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

# the global hook dictionaries of torch.nn.modules.module (read defensively: private names)
_GLOBAL_HOOKS = tuple(d for d in (getattr(_module, name, None) for name in (
    "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks", "_global_backward_pre_hooks"))
    if isinstance(d, dict))
_LOCAL_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def is_hooked(module: nn.Module) -> bool:
    """Whether calling ``module`` would run a hook: its own forward/backward hooks or pre-hooks, or a global module
    hook (``torch.nn.modules.module.register_module_forward_hook`` and the like)."""
    for name in _LOCAL_HOOKS:
        if getattr(module, name, None):
            return True
    for hooks in _GLOBAL_HOOKS:
        if hooks:
            return True
    return False


def is_plain(module: nn.Module, cls: type[nn.Module]) -> bool:
    """Whether a block may compute ``module``'s output from its parameters instead of calling it: ``module`` is
    exactly a ``cls`` (not a subclass, a quantized or otherwise replaced layer) and calling it would run no
    hook (:func:`is_hooked`).  Parametrized layers (``torch.nn.utils.parametrize``) are subclasses: they are
    called (their parametrized weight would also be right on the fast path, only slower to reach)."""
    return type(module) is cls and not is_hooked(module)
