"""Activation lookup by name or class, so every block takes ``act_layer="relu"`` or ``act_layer=nn.ReLU``."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["get_act_layer", "create_act", "ReLU6", "SiLU", "Hardswish", "Hardsigmoid", "Mish"]

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


def _in_place(module: nn.Module, x: torch.Tensor) -> bool:
    return module.inplace and not (x.requires_grad and torch.is_grad_enabled())


class ReLU6(nn.ReLU6):
    """``nn.ReLU6`` that, built with ``inplace=True``, works in place only when autograd does not record through
    its input (inference, frozen layers): in place there saves a full-size allocation and write, while under
    autograd it would add a copy (see :func:`create_act`).  The same for :class:`SiLU`, :class:`Hardswish`,
    :class:`Hardsigmoid` and :class:`Mish`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardtanh(x, 0.0, 6.0, _in_place(self, x))


class SiLU(nn.SiLU):
    """``nn.SiLU``, in place only when autograd does not record (see :class:`ReLU6`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x, _in_place(self, x))


class Hardswish(nn.Hardswish):
    """``nn.Hardswish``, in place only when autograd does not record (see :class:`ReLU6`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(x, _in_place(self, x))


class Hardsigmoid(nn.Hardsigmoid):
    """``nn.Hardsigmoid``, in place only when autograd does not record (see :class:`ReLU6`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardsigmoid(x, _in_place(self, x))


class Mish(nn.Mish):
    """``nn.Mish``, in place only when autograd does not record (see :class:`ReLU6`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.mish(x, _in_place(self, x))


_NO_GRAD_INPLACE: dict[type[nn.Module], type[nn.Module]] = {
    nn.ReLU6: ReLU6, nn.SiLU: SiLU, nn.Hardswish: Hardswish, nn.Hardsigmoid: Hardsigmoid, nn.Mish: Mish,
    ReLU6: ReLU6, SiLU: SiLU, Hardswish: Hardswish, Hardsigmoid: Hardsigmoid, Mish: Mish,
}


def create_act(act: str | type[nn.Module] | None, inplace: bool = False) -> nn.Module:
    """Instantiate an activation.  ``inplace=True`` (the caller's promise that the input may be overwritten) is
    honoured as the activation allows: ReLU, LeakyReLU and ELU, whose backward reads their output, always work in
    place (memory saved at no cost); ReLU6, SiLU, Hardswish, Hardsigmoid and Mish, whose backward reads their
    input, are built as the subclasses above, in place only when autograd does not record (in eval a full-size
    write saved: MobileNetV2's forward at 8x224x224 spent 4x timm's time in its out-of-place ReLU6s); any other
    activation is built out of place."""
    cls = get_act_layer(act)
    if inplace and cls in _INPLACE_SAFE:
        return cls(inplace=True)
    if inplace and cls in _NO_GRAD_INPLACE:
        return _NO_GRAD_INPLACE[cls](inplace=True)
    return cls()
