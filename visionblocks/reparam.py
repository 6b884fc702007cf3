"""The one structural re-parameterization protocol of visionblocks.

A module that has a *training form* (several branches, BatchNorms, over-parameterized kernels) and an
equivalent *inference form* (usually one convolution) implements::

    def reparameterize(self) -> None:
        '''Switch this module, in place, to its inference form.'''

The method must

* leave the eval-mode output unchanged (to float rounding: 1e-5 relative in float32, 1e-10 in float64);
* be idempotent: calling it on an already folded module does nothing;
* refuse to fold a module in training mode (BatchNorm statistics are only fixed in eval mode) by raising
  ``RuntimeError`` — :func:`reparameterize` checks this before calling it;
* expose ``is_reparameterized`` (a bool attribute or property), and accept a constructor flag
  (``deploy=True``, the name RepVGG uses) that builds the
  inference form directly, so a checkpoint saved after folding loads into a freshly built block.

:func:`reparameterize` walks a whole module tree top-down: a parent folds first (it may fold its children
itself), then the walk continues into whatever children it has afterwards.  Any module anywhere in a
user's network is covered, so ``visionblocks.reparameterize(model.eval())`` is all a user needs.
"""
from __future__ import annotations

import torch.nn as nn

__all__ = ["reparameterize", "is_reparameterizable"]


def is_reparameterizable(module: nn.Module) -> bool:
    """Whether ``module`` itself implements the protocol."""
    return callable(getattr(module, "reparameterize", None))


def reparameterize(module: nn.Module) -> nn.Module:
    """Fold every re-parameterizable part of ``module`` (itself included) into its inference form.

    In place; idempotent; returns ``module``.  Raises ``RuntimeError`` when a module to fold is in
    training mode (call ``.eval()`` first).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"reparameterize expects an nn.Module, got {type(module).__name__}")
    _walk(module)
    return module


def _walk(module: nn.Module) -> None:
    if is_reparameterizable(module):
        if module.training and not getattr(module, "is_reparameterized", False):
            raise RuntimeError(
                f"{type(module).__name__} is in training mode: re-parameterization folds BatchNorm running "
                "statistics, which are only used in eval mode; call .eval() first")
        module.reparameterize()
    for child in list(module.children()):
        _walk(child)
