"""Activation lookup by name or class, so every block takes ``act_layer="relu"`` or ``act_layer=nn.ReLU``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

__all__ = ["get_act_layer", "create_act"]

_ACTS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU,
    "swish": nn.SiLU, "hard_swish": nn.Hardswish, "hardswish": nn.Hardswish, "sigmoid": nn.Sigmoid,
    "hard_sigmoid": nn.Hardsigmoid, "hardsigmoid": nn.Hardsigmoid, "tanh": nn.Tanh, "mish": nn.Mish,
    "elu": nn.ELU, "prelu": nn.PReLU, "identity": nn.Identity,
}


def get_act_layer(act: str | type[nn.Module] | Callable[..., nn.Module] | None) -> Callable[..., nn.Module]:
    """Return the activation class for a name (``"relu"``, ``"gelu"``...), a class, or ``None`` (identity)."""
    if act is None:
        return nn.Identity
    if isinstance(act, str):
        try:
            return _ACTS[act.lower()]
        except KeyError:
            raise ValueError(f"unknown activation {act!r}; known: {', '.join(sorted(_ACTS))}") from None
    if callable(act):
        return act
    raise TypeError(f"act_layer must be a name, an nn.Module class or None, got {type(act).__name__}")


# Activations whose backward needs only their output: in place, they save a full-size allocation.  The others
# (ReLU6/hardtanh, SiLU, Hardswish, Hardsigmoid, Mish) differentiate through their *input*, so autograd clones
# the input before an in-place call: in training, in place costs a full-size copy more than out of place.
_INPLACE_SAFE = (nn.ReLU, nn.LeakyReLU, nn.ELU)


def create_act(act: str | type[nn.Module] | None, inplace: bool = False) -> nn.Module:
    """Instantiate an activation.  ``inplace`` is honoured only by activations whose backward reads their output
    (ReLU, LeakyReLU, ELU), where it saves memory at no cost; for the others it would add a copy under autograd,
    so they are built out of place."""
    cls = get_act_layer(act)
    if inplace and cls in _INPLACE_SAFE:
        return cls(inplace=True)
    return cls()
