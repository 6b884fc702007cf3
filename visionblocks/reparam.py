"""The one structural re-parameterization protocol of visionblocks.

A module that has a *training form* (several branches, BatchNorms, over-parameterized kernels) and an
equivalent *inference form* implements::

    def reparameterize(self) -> None:
        '''Switch this module, in place, to its inference form.'''

The method must

* leave the eval-mode output unchanged (to float rounding: 1e-5 relative in float32, 1e-10 in float64);
* be idempotent: calling it on an already folded module does nothing;
* refuse to fold a module in training mode (BatchNorm statistics are only fixed in eval mode) by raising
  ``RuntimeError`` — :func:`reparameterize` checks this before calling it;
* expose ``is_reparameterized``, and accept a constructor flag (``deploy=True``, the name RepVGG uses) that
  builds the inference form directly, so a checkpoint saved after folding loads into a freshly built module.

:class:`ReparamModule` implements all of this once: a block whose inference form is one layer (a convolution,
an FC) derives from it and supplies only that layer and what its weight and bias equal.  Any other module that
implements the method is folded as well.

:func:`reparameterize` walks a whole module tree top-down: a parent folds first (it may fold its children
itself), then the walk continues into whatever children it has afterwards.  Any module anywhere in a
user's network is covered, so ``visionblocks.reparameterize(model.eval())`` is all a user needs.
"""
from __future__ import annotations

import contextlib
import copy
import itertools
import warnings
from typing import Iterator

import torch
import torch.nn as nn
from torch.nn.utils import parametrize, prune
from torch.nn.utils.spectral_norm import SpectralNorm as _SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm as _WeightNorm

__all__ = ["ReparamModule", "reparameterize", "is_reparameterizable", "require_eval", "check_foldable_modes",
           "unchanged_on_error", "folds_checked", "fold_tree", "mark_inserted", "pruning_methods", "refresh_pruned",
           "drop_parameter"]


def is_reparameterizable(obj: nn.Module | type[nn.Module]) -> bool:
    """Whether ``obj`` (a module, or a module class) implements the protocol itself."""
    return callable(getattr(obj, "reparameterize", None))


def require_eval(module: nn.Module) -> None:
    """Raise ``RuntimeError`` when ``module`` is in training mode: folding uses BatchNorm running statistics,
    which only eval mode uses."""
    if module.training:
        raise RuntimeError(
            f"{type(module).__name__} is in training mode: re-parameterization folds BatchNorm running "
            "statistics, which are only used in eval mode; call .eval() first")


class ReparamModule(nn.Module):
    """Base of a module whose inference form is one layer (usually an ``nn.Conv2d`` with bias).

    The base class owns the protocol: :meth:`reparameterize` does nothing on a folded module, refuses training
    mode, computes the layer without autograd and records the state in ``is_reparameterized``, which
    ``__init__(deploy=True)`` sets for a module built directly in its inference form.  A subclass supplies:

    * ``deployed_name``: the attribute that holds the inference layer (``"body"``, ``"conv"``, ``"fc3"``);
    * :meth:`build_deployed`: that layer, freshly constructed (also what the subclass's ``__init__`` stores
      under ``deployed_name`` when ``deploy=True``);
    * :meth:`equivalent_kernel_bias`: its weight and bias, computed from the training form;
    * optionally :meth:`drop_training_parts`: remove (or fold into layers that stay) whatever else only the
      training form has, so that the folded module has the state-dict keys of one built with ``deploy=True``.
    """

    deployed_name: str = ""

    def __init__(self, deploy: bool = False):
        super().__init__()
        self.is_reparameterized = bool(deploy)

    def build_deployed(self, device=None, dtype=None) -> nn.Module:  # pragma: no cover - abstract
        """The inference layer, with fresh parameters (it needs ``weight``, and ``bias`` unless the equivalent
        bias is ``None``)."""
        raise NotImplementedError

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:  # pragma: no cover - abstract
        """Weight and bias (``None`` for none) of the inference layer equal to the training form in eval mode.

        Differentiable (RepVGG's ``get_equivalent_kernel_bias``: usable for penalties during training)."""
        raise NotImplementedError

    def drop_training_parts(self) -> None:
        """Called after the inference layer is installed: drop the rest of the training form (default: none)."""

    def reparameterize(self) -> None:
        """Switch to the inference form, in place (eval mode only; idempotent)."""
        if self.is_reparameterized:
            return
        require_eval(self)
        with torch.no_grad(), unchanged_on_error(self):
            refresh_pruned(self)
            trainable = any(p.requires_grad for p in self.parameters())  # (a frozen block stays frozen)
            weight, bias = _equivalent_kernel_bias_accurately(self)
            layer = self.build_deployed(device=weight.device, dtype=weight.dtype)
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
            layer.train(False).requires_grad_(trainable)
            setattr(self, self.deployed_name, layer)
            self.drop_training_parts()
        self.is_reparameterized = True


def _equivalent_kernel_bias_accurately(module: ReparamModule) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``module.equivalent_kernel_bias()``, computed in float32 when the module holds bfloat16 or float16 tensors
    (on a float32 copy: those widen exactly) and rounded once to the dtype the fold would have had: in bfloat16 the
    sums and products of a fold round at every step (a bfloat16 ACNet-ResNet-18, fused, was 1.5-2.7x further from
    the float64 truth than the same fold done in float32 and rounded)."""
    dtypes = {t.dtype for t in itertools.chain(module.parameters(), module.buffers()) if t.is_floating_point()}
    if not dtypes or min(d.itemsize for d in dtypes) >= 4:
        return module.equivalent_kernel_bias()
    out_dtype = dtypes.pop()
    for d in dtypes:
        out_dtype = torch.promote_types(out_dtype, d)
    widened = copy.deepcopy(module).float()
    refresh_pruned(widened)  # (a pruned weight is a plain attribute: .float() left it in the narrow type)
    weight, bias = widened.equivalent_kernel_bias()
    return weight.to(out_dtype), None if bias is None else bias.to(out_dtype)


def reparameterize(module: nn.Module) -> nn.Module:
    """Fold every re-parameterizable part of ``module`` (itself included) into its inference form.

    In place; idempotent; returns ``module``.  Raises ``RuntimeError`` when a module to fold (or a BatchNorm in
    it) is in training mode (call ``.eval()`` first).  Pruned layers (``torch.nn.utils.prune``) are folded with
    their current ``weight_orig * mask``, parametrized ones (``torch.nn.utils.parametrize``) with their
    parametrized value.  On any error the module is left as it was.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"reparameterize expects an nn.Module, got {type(module).__name__}")
    check_foldable_modes(module, "reparameterize")  # before anything is folded: never half a network
    with unchanged_on_error(module), folds_checked(module, "reparameterize"):
        fold_tree(module)
    return module


def fold_tree(module: nn.Module) -> None:
    """The folds of :func:`reparameterize` without its checks (for callers that make them: ``fuse``): pruned
    layers refreshed, then every re-parameterizable module folded, parents first."""
    refresh_pruned(module)
    _walk(module)


#: set on every module the surgery puts into a network (``visionblocks.insert`` / ``replace``; see mark_inserted)
_INSERTED = "_visionblocks_inserted"


def mark_inserted(module: nn.Module) -> nn.Module:
    """Mark ``module`` as put into a network by surgery: a fold that would drop it (it sits in the training form of
    a re-parameterizable block, whose fold computes one layer from the parts that block built and ignores the rest)
    is refused by :func:`folds_checked`.  Returns ``module``."""
    module.__dict__[_INSERTED] = True
    return module


def _forward_hooked(m: nn.Module) -> bool:
    pre = [h for h in m._forward_pre_hooks.values() if not isinstance(h, prune.BasePruningMethod)]
    return bool(pre or m._forward_hooks)


@contextlib.contextmanager
def folds_checked(root: nn.Module, caller: str) -> Iterator[None]:
    """Check what the folds of ``root`` run inside it (:func:`reparameterize`, :func:`visionblocks.fuse`, each within
    :func:`unchanged_on_error`, which puts the network back when this raises) dropped:

    * a module that surgery inserted (:func:`mark_inserted`) into the training form of a re-parameterizable block
      is not part of the arithmetic its fold does (RepVGG's fold reads its branches' convolutions and BatchNorms):
      dropping it would change the outputs, so ``ValueError`` names it and the block (also when the fold failed on
      what surgery put there);
    * forward hooks (and pre-hooks) on the folded layers no longer run: a ``UserWarning`` names those layers (as
      ``visionblocks.replace`` does for the modules it replaces)."""
    # inserted module -> (its name, the re-parameterizable block around it); the modules are held (not just their
    # ids, which a new module could reuse once a dropped one is freed)
    inside: dict[nn.Module, tuple[str, str]] = {}
    for name, m in root.named_modules():
        if is_reparameterizable(m) and not getattr(m, "is_reparameterized", False):
            for sub_name, sub in m.named_modules():
                if sub is not m and sub.__dict__.get(_INSERTED, False):
                    inside.setdefault(sub, (".".join(n for n in (name, sub_name) if n), name or "the model"))
    hooked = {m: name or "the model" for name, m in root.named_modules() if _forward_hooked(m)}

    def refuse(dropped: list[tuple[str, str]]) -> ValueError:
        where, block = dropped[0]
        return ValueError(f"{caller}: surgery (insert/replace) put {where!r} into the training form of the "
                          f"re-parameterizable {block!r}, whose fold computes one layer from the parts the block "
                          "itself built: it would drop that module and change the outputs; put blocks after the "
                          "re-parameterizable block, not into it (nothing was folded)")
    try:
        yield
    except Exception as e:
        if inside:
            raise refuse(list(inside.values())) from e
        raise
    kept = set(root.modules())
    dropped = [v for k, v in inside.items() if k not in kept]
    if dropped:
        raise refuse(dropped)
    unhooked = [name for k, name in hooked.items() if k not in kept]
    if unhooked:
        warnings.warn(f"{caller}: the forward hooks on {', '.join(unhooked[:5])}"
                      f"{f' (and {len(unhooked) - 5} more)' if len(unhooked) > 5 else ''} went with the layers it "
                      "folded (the inference form does not run them); register them on the folded network's modules "
                      "if you need them", stacklevel=4)


def check_foldable_modes(module: nn.Module, caller: str) -> None:
    """Raise ``RuntimeError`` naming the first re-parameterizable module of ``module`` still to be folded that is in
    training mode, or holds a BatchNorm in training mode (a branch's), so that a fold refused for one block leaves
    every block as it was.  (Other parts' modes do not matter to a fold: modules torch adds after ``.eval()``,
    such as a parametrization's, start in training mode.)"""
    for name, m in module.named_modules():
        if is_reparameterizable(m) and not getattr(m, "is_reparameterized", False):
            for sub_name, sub in m.named_modules():
                if sub.training and (sub is m or isinstance(sub, nn.modules.batchnorm._NormBase)):
                    where = ".".join(n for n in (name, sub_name) if n) or "the module"
                    raise RuntimeError(
                        f"{caller}: {where} ({type(sub).__name__}) is in training mode: re-parameterization folds "
                        "BatchNorm running statistics, which are only used in eval mode; call .eval() first "
                        "(nothing was folded)")


@contextlib.contextmanager
def unchanged_on_error(root: nn.Module) -> Iterator[None]:
    """Run an in-place transformation of ``root`` (folding, fusing) so that, if it raises, every module of the tree
    is put back as it was: class (``parametrize`` swaps it), attributes, and the contents of every dict or set it
    holds (parameters, buffers, children, and the hook tables: ``prune.remove`` pops a pre-hook), each restored
    into its own object (hook handles keep working).  Tensor values are not saved: a transformation must build new
    tensors, never write into the existing ones (tests/test_reparam_atomic.py checks every tensor's version)."""
    saved = []
    for m in root.modules():
        attrs = dict(m.__dict__)
        tables = [(v, copy.copy(v)) for v in attrs.values() if isinstance(v, (dict, set))]
        saved.append((m, m.__class__, attrs, tables))
    try:
        yield
    except BaseException:
        for m, cls, attrs, tables in saved:
            m.__class__ = cls
            m.__dict__.clear()
            m.__dict__.update(attrs)
            for live, old in tables:
                live.clear()
                live.update(old)
        raise


def pruning_methods(module: nn.Module) -> list[prune.BasePruningMethod]:
    """The ``torch.nn.utils.prune`` methods on ``module`` (forward pre-hooks, one per pruned tensor)."""
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]


def _recomputing_hooks(module: nn.Module) -> list:
    """The forward pre-hooks that recompute a weight attribute at each call: ``torch.nn.utils.prune``'s methods and
    the hook-based (deprecated) ``torch.nn.utils.weight_norm`` / ``spectral_norm``."""
    kinds = (prune.BasePruningMethod, _WeightNorm, _SpectralNorm)
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, kinds)]


def refresh_pruned(root: nn.Module) -> None:
    """Recompute the weight of every pruned layer (``torch.nn.utils.prune``) and every layer under the hook-based
    ``weight_norm``/``spectral_norm`` in ``root``, as their forward pre-hooks do at each call: a fold reads
    ``layer.weight``, which is stale once ``weight_orig`` (``weight_g``, ``weight_v``) has changed (an optimiser
    step) without a forward since.  Without autograd, so the recomputed weight is a leaf (a fold deep-copies it).
    Spectral norm runs no power iteration here (the layers are in eval mode)."""
    with torch.no_grad():
        for m in root.modules():
            for hook in _recomputing_hooks(m):
                hook(m, ())


def drop_parameter(module: nn.Module, name: str) -> None:
    """Delete the parameter ``name`` of ``module`` (a training-form part a fold no longer needs), also when it is
    pruned (its ``*_orig``, mask and pre-hook go too) or parametrized (its parametrization goes)."""
    if parametrize.is_parametrized(module, name):
        # (leave_parametrized=True: torch refuses False for a parametrization of several tensors, weight_norm's)
        parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    if any(getattr(method, "_tensor_name", None) == name for method in pruning_methods(module)):
        prune.remove(module, name)
    for hook in _recomputing_hooks(module):
        if isinstance(hook, _WeightNorm) and hook.name == name:
            torch.nn.utils.remove_weight_norm(module, name)
        elif isinstance(hook, _SpectralNorm) and hook.name == name:
            torch.nn.utils.remove_spectral_norm(module, name)
    delattr(module, name)


def _walk(module: nn.Module) -> None:
    if is_reparameterizable(module):
        if not getattr(module, "is_reparameterized", False):
            require_eval(module)  # also for modules that implement the method without the base class
        module.reparameterize()
    for child in list(module.children()):
        _walk(child)
