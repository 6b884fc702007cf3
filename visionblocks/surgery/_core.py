"""What insert, replace and lazy share: resolving a block, selecting modules, the probe forward, atomic edits of a
module tree, and the report of a surgery."""
from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Union

import torch
import torch.nn as nn

from visionblocks.layers import conv_weights_channels_last, is_channels_last
from visionblocks.registry import BlockInfo, block_info, list_blocks

__all__ = ["BlockSpec", "Edit", "Probe", "Selector", "SurgeryError", "SurgeryReport", "become", "count_params",
           "verify_forward",
           "resolve_block", "run_probe", "select_modules", "shape_signature", "first_probe"]

logger = logging.getLogger("visionblocks.surgery")

#: What ``after=``/``target=`` accept: a glob over qualified module names (``"layer*.*.bn3"``; ``*`` also matches
#: dots), a module class (or tuple of classes: ``isinstance``), or a callable ``(name, module) -> bool``.
Selector = Union[str, type, tuple, Callable[[str, nn.Module], bool]]


class SurgeryError(ValueError):
    """A surgery that cannot be done as asked; the model is left exactly as it was."""


# ---------------------------------------------------------------------------------------------------- blocks


@dataclass
class BlockSpec:
    """A block to build: its factory, the name to show in messages, its registry entry (``None`` for an unregistered
    class or factory) and its constructor's parameters."""

    factory: Callable[..., nn.Module]
    name: str
    info: BlockInfo | None
    params: dict[str, inspect.Parameter] = field(default_factory=dict)
    var_kwargs: bool = True

    @property
    def first(self) -> str | None:
        """The name of the first constructor parameter (``channels`` or ``in_channels`` for our blocks)."""
        return next(iter(self.params), None)

    def accepts(self, name: str) -> bool:
        return name in self.params or self.var_kwargs

    def takes_in_out(self) -> bool:
        """Whether the block is built as ``(in_channels, out_channels, ...)`` (a ``conv``-layout block)."""
        return self.first == "in_channels" or (self.info is not None and self.info.layout == "conv")

    def kwargs_for(self, channels: int, size: tuple[int, int] | None, user: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments (besides the first, the channel count) for a block that keeps ``channels``: a
        ``conv``-layout block gets ``out_channels=channels``, a fixed-size block the spatial ``size``."""
        kwargs = dict(user)
        if self.takes_in_out() and "out_channels" in self.params and "out_channels" not in kwargs:
            kwargs["out_channels"] = channels
        fixed = self.info.fixed_size if self.info is not None else False
        if fixed and size is not None and "size" in self.params and "size" not in kwargs:
            kwargs["size"] = tuple(size)
        return kwargs

    def build(self, *args: Any, where: str = "", **kwargs: Any) -> nn.Module:
        """``factory(*args, **kwargs)``; a failure is re-raised as :class:`SurgeryError` naming the block, the
        place and what the block's constructor expects."""
        try:
            module = self.factory(*args, **kwargs)
        except (TypeError, ValueError) as e:
            shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
            place = f" for {where}" if where else ""
            raise SurgeryError(f"cannot build block {self.name!r}{place} as {self.name}({shown}): {e} "
                               f"(its constructor: {self.name}{self.signature_text()})") from e
        if not isinstance(module, nn.Module):
            raise SurgeryError(f"block {self.name!r} built a {type(module).__name__}, not an nn.Module")
        return module

    def signature_text(self) -> str:
        if not self.params:
            return "(...)"
        return "(" + ", ".join(str(p) for p in self.params.values()) + (", **kwargs" if self.var_kwargs else "") + ")"


def _registered_info(cls: type) -> BlockInfo | None:
    for name in list_blocks():
        info = block_info(name)
        if info.cls is cls:
            return info
    return None


def resolve_block(block: Any) -> BlockSpec:
    """A :class:`BlockSpec` for ``block``: a registry name (case-insensitive, former names too), a registered or
    unregistered ``nn.Module`` class, or a factory callable (``functools.partial`` of a class included)."""
    if isinstance(block, BlockSpec):
        return block
    if isinstance(block, nn.Module):
        raise TypeError(f"block must be a registry name, a module class or a factory, not a module instance "
                        f"({type(block).__name__}): surgery builds one new block per place")
    if isinstance(block, str):
        info = block_info(block)
        factory, name = info.cls, info.name
    elif callable(block):
        factory = block
        base = block.func if isinstance(block, functools.partial) else block
        info = _registered_info(base) if isinstance(base, type) else None
        name = info.name if info is not None else getattr(base, "__name__", type(base).__name__)
    else:
        raise TypeError(f"block must be a registry name, a module class or a factory, got {type(block).__name__}")
    params, var_kwargs = {}, True
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature
        sig = None
    if sig is not None:
        bound = set(factory.keywords) if isinstance(factory, functools.partial) else set()
        params = {k: p for k, p in sig.parameters.items()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and k not in bound}
        var_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return BlockSpec(factory, name, info, params, var_kwargs)


# ------------------------------------------------------------------------------------------------- selection


def _describe_selector(selector: Selector) -> str:
    if isinstance(selector, str):
        return repr(selector)
    if isinstance(selector, type):
        return selector.__name__
    if isinstance(selector, tuple):
        return "(" + ", ".join(getattr(s, "__name__", repr(s)) for s in selector) + ")"
    return getattr(selector, "__name__", repr(selector))


def select_modules(model: nn.Module, selector: Selector, what: str) -> list[tuple[str, nn.Module]]:
    """The ``(qualified name, module)`` pairs of ``model`` (the root excluded) that ``selector`` matches, in
    ``named_modules`` order; :class:`SurgeryError` when there are none (naming a few close names)."""
    if isinstance(selector, str):
        def match(name: str, module: nn.Module) -> bool:
            return fnmatch.fnmatchcase(name, selector)
    elif isinstance(selector, type) or (isinstance(selector, tuple) and all(isinstance(s, type) for s in selector)):
        def match(name: str, module: nn.Module) -> bool:
            return isinstance(module, selector)
    elif callable(selector):
        match = selector
    else:
        raise TypeError(f"{what} must be a glob over module names, a module class or a callable (name, module) -> "
                        f"bool, got {type(selector).__name__}")
    named = [(n, m) for n, m in model.named_modules(remove_duplicate=False) if n]
    found = [(n, m) for n, m in named if match(n, m)]
    places: dict[int, list[str]] = {}
    for n, m in named:
        places.setdefault(id(m), []).append(n)
    shared: list[list[str]] = []
    for _, m in found:
        if len(places[id(m)]) > 1 and places[id(m)] not in shared:
            shared.append(places[id(m)])
    if shared:
        raise SurgeryError(f"{what}={_describe_selector(selector)} selects a module that {type(model).__name__} uses at "
                           f"several places ({'; '.join(', '.join(p) for p in shared[:3])}): an edit would change one "
                           "place and not the other(s); give each place its own module (nothing was changed)")
    if not found:
        hint = ""
        if isinstance(selector, str):
            close = difflib.get_close_matches(selector, [n for n, _ in named], n=5, cutoff=0.4)
            hint = f"; close names: {', '.join(close)}" if close else ""
        if not hint:
            hint = "; its module names look like: " + ", ".join(n for n, _ in named[:6])
        raise SurgeryError(f"{what}={_describe_selector(selector)} matches no module of {type(model).__name__}{hint}")
    return found


# ---------------------------------------------------------------------------------------------------- probing


def shape_signature(out: Any, _nested: bool = False) -> Any:
    """A comparable description of a forward's output: the shapes of its tensors, in its structure.  Inside a list,
    tuple or dict a tensor's first dimension is written ``"N"``: it may count what the data holds (a detector's
    boxes per image change with any weight), while the output shape of every edited module is checked where it
    runs."""
    if isinstance(out, torch.Tensor):
        return ("N", *out.shape[1:]) if _nested and out.ndim else tuple(out.shape)
    if isinstance(out, (list, tuple)):
        return (type(out).__name__, tuple(shape_signature(o, True) for o in out))
    if isinstance(out, dict):
        return ("dict", tuple((k, shape_signature(v, True)) for k, v in out.items()))
    return type(out).__name__


@dataclass
class Probe:
    """What one forward showed: the model's output signature and, per watched module, its first call's input and
    output tensors (kept only where ``keep`` asked) and shapes."""

    output: Any
    in_shape: dict[str, tuple | None] = field(default_factory=dict)
    out_shape: dict[str, tuple | None] = field(default_factory=dict)
    kept_in: dict[str, Any] = field(default_factory=dict)
    kept_out: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def default_input(model: nn.Module) -> torch.Tensor:
    """A (1, C, 224, 224) probe input, C the input channels of the first convolution, on the model's device and
    dtype; drawn from a private generator so that probing leaves the global random state alone."""
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is None:
        raise SurgeryError(f"cannot guess an input for {type(model).__name__} (it has no nn.Conv2d): pass "
                           "example_input=")
    ref = next(iter(model.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.get_default_dtype()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, first_conv.in_channels, 224, 224, generator=gen, dtype=dtype)
    return x.to(device)


def _describe_input(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_describe_input(v) for v in value) + ")"
    return f"a {type(value).__name__}"


def first_probe(model: nn.Module, example_input: Any, watch: dict[str, nn.Module], keep: Iterable[str],
                label: str) -> Probe:
    """:func:`run_probe` before any change: a forward that fails on ``example_input`` is a :class:`SurgeryError`
    naming the input (the model is untouched).  A model holding lazy modules not built yet is refused first: the
    probe forward would build them (their shapes and weights drawn then), which a failed edit could not undo."""
    from torch.nn.modules.lazy import LazyModuleMixin  # noqa: PLC0415
    # (LazyModuleMixin drops its _initialize_hook once built; vb.lazy's blocks hold no uninitialised parameter)
    unbuilt = [n for n, m in model.named_modules() if isinstance(m, LazyModuleMixin)
               and (m.has_uninitialized_params() or hasattr(m, "_initialize_hook"))]
    if unbuilt:
        raise SurgeryError(f"{label}: the model holds lazy modules not built yet ({', '.join(unbuilt[:5])}): call it "
                           "once on an input first, then edit it (nothing was changed)")
    return run_probe(model, example_input, watch, keep=keep, failure=lambda e: (
        f"{label}: the model's forward fails on example_input ({_describe_input(example_input)}) before any change "
        f"({type(e).__name__}: {e}); pass an input the model takes (a tensor, or a tuple of its positional inputs)"))


def run_probe(model: nn.Module, example_input: Any, watch: dict[str, nn.Module],
              keep: Iterable[str] = (), expect: dict[str, tuple] | None = None,
              mismatch: Callable[[str, tuple, tuple | None], str] | None = None,
              failure: Callable[[Exception], str] | None = None) -> Probe:
    """One forward of ``model`` on ``example_input`` (a tensor, or a tuple of positional inputs) in eval mode and
    without autograd, with hooks on the ``watch`` modules; every module's training flag is restored after.

    With ``expect`` (name -> output shape), a watched module whose output has another shape stops the forward
    right there with :class:`SurgeryError` (``mismatch(name, expected, got)`` is its message).  With ``failure``,
    any other error of the forward becomes a :class:`SurgeryError` whose message is ``failure(error)``."""
    keep, expect = set(keep), expect or {}
    probe = Probe(output=None)
    handles = []
    for name, module in watch.items():
        def hook(mod, args, out, name=name):
            probe.calls[name] = probe.calls.get(name, 0) + 1
            if probe.calls[name] > 1:
                return
            x = _first_tensor(args)
            y = _first_tensor(out) if not isinstance(out, torch.Tensor) else out
            probe.in_shape[name] = tuple(x.shape) if x is not None else None
            probe.out_shape[name] = tuple(y.shape) if isinstance(out, torch.Tensor) else None
            if name in keep:
                probe.kept_in[name], probe.kept_out[name] = x, out
            if name in expect and probe.out_shape[name] != expect[name]:
                raise SurgeryError(mismatch(name, expect[name], probe.out_shape[name]))
        handles.append(module.register_forward_hook(hook))
    modes = [(m, m.training) for m in model.modules()]
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    try:
        model.eval()
        with torch.no_grad():
            out = model(*inputs)
        probe.output = shape_signature(out)
    except SurgeryError:
        raise
    except Exception as e:
        if failure is None:
            raise
        raise SurgeryError(failure(e)) from e
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return probe


# ------------------------------------------------------------------------------------------------------ edits

_NONE_ATTR = object()  # the slot was a plain ``None`` attribute (timm's ``self.se = None``)
_ABSENT = object()  # the slot did not exist (appended to a Sequential)


class Edit:
    """One change of a module tree: ``parent.<key> = new``, undoable."""

    def __init__(self, parent: nn.Module, key: str, new: nn.Module, after: str | None = None):
        self.parent, self.key, self.new, self.after = parent, key, new, after
        if key in parent._modules:
            self.old = parent._modules[key]
        elif key in parent.__dict__ and parent.__dict__[key] is None:
            self.old = _NONE_ATTR
        else:
            self.old = _ABSENT

    def apply(self) -> None:
        if self.old is _NONE_ATTR:
            del self.parent.__dict__[self.key]
        modules = self.parent._modules
        if self.key not in modules and self.after in modules:  # a new child, registered right after ``after``
            items = list(modules.items())
            at = [k for k, _ in items].index(self.after) + 1
            modules.clear()
            modules.update(items[:at] + [(self.key, self.new)] + items[at:])
        else:
            modules[self.key] = self.new

    def undo(self) -> None:
        if self.old is _ABSENT or self.old is _NONE_ATTR:
            del self.parent._modules[self.key]
            if self.old is _NONE_ATTR:
                object.__setattr__(self.parent, self.key, None)
        else:
            self.parent._modules[self.key] = self.old


def parent_and_key(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, key = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), key


def apply_edits(edits: list[Edit], check: Callable[[], None]) -> None:
    """Apply ``edits`` in order, then ``check()``; on any failure undo them all (in reverse) and re-raise."""
    done: list[Edit] = []
    try:
        for edit in edits:
            edit.apply()
            done.append(edit)
        check()
    except BaseException:
        for edit in reversed(done):
            edit.undo()
        raise


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def place_like(block: nn.Module, reference: torch.Tensor | None, training: bool) -> nn.Module:
    """``block`` on the device (and floating dtype) of ``reference``, in the training mode of where it goes, with
    its convolution weights channels-last when ``reference`` (the map it will see) is: a network whose maps are
    channels-last (``visionblocks.fuse`` on the CPU, ``to(memory_format=torch.channels_last)``) keeps them so
    through the new block instead of converting at each of its convolutions."""
    if reference is not None:
        if reference.is_floating_point():
            block = block.to(device=reference.device, dtype=reference.dtype)
        else:
            block = block.to(device=reference.device)
        if is_channels_last(reference):
            conv_weights_channels_last(block)
    return block.train(training)


# ----------------------------------------------------------------------------------------------------- become

_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
               "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
               "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")


def become(module: nn.Module, new: nn.Module, carry: Iterable[str] = ()) -> nn.Module:
    """Turn ``module`` into ``new`` in place (its class and state), as torch's lazy modules turn into their
    ``cls_to_become``: every reference to ``module`` (its parent's slot, an optimizer's view of the parent) now
    sees ``new``'s class, parameters and submodules.  ``module``'s hooks and the attributes named in ``carry`` (e.g.
    what a framework set on it) are kept; its training flag too."""
    kept = {k: module.__dict__[k] for k in carry if k in module.__dict__}
    hooks = {k: module.__dict__[k] for k in _HOOK_DICTS if k in module.__dict__}
    training = module.training
    state = dict(new.__dict__)
    module.__dict__.clear()
    module.__dict__.update(state)
    module.__dict__.update(hooks)
    module.__dict__.update(kept)
    module.__class__ = type(new)
    module.train(training)
    return module


# ----------------------------------------------------------------------------------------------------- report


class SurgeryReport(list):
    """The qualified names of the modules a surgery put into the model (a ``list`` of ``str``), with what it did:
    ``operation``, ``block``, ``params_before``/``params_after`` (the model's parameter counts) and
    ``params_added`` (their difference), and ``per_module`` (name -> parameters of the new module)."""

    def __init__(self, names: list[str], operation: str, block: str, params_before: int, params_after: int,
                 per_module: dict[str, int]):
        super().__init__(names)
        self.operation, self.block = operation, block
        self.params_before, self.params_after = params_before, params_after
        self.per_module = dict(per_module)

    @property
    def params_added(self) -> int:
        return self.params_after - self.params_before

    def summary(self) -> str:
        return (f"{self.operation}: {len(self)} x {self.block} ({', '.join(self[:3])}{', ...' if len(self) > 3 else ''}); "
                f"parameters {self.params_before:,} -> {self.params_after:,} ({self.params_added:+,})")

    def __repr__(self) -> str:
        return f"SurgeryReport({list(self)!r}, params_added={self.params_added})"


def verify_forward(model: nn.Module, example_input: Any, new: dict[str, nn.Module], expect: dict[str, tuple],
                   mismatch: Callable[[str, tuple, tuple | None], str], label: str) -> Probe:
    """The verification forward after a surgery: each new module must give its expected shape (checked as it
    runs, so the first wrong one is named), and the forward must succeed."""
    probe = run_probe(model, example_input, new, expect=expect, mismatch=mismatch, failure=lambda e: (
        f"{label}: the model's forward fails after the surgery ({type(e).__name__}: {e})"))
    missing = [n for n in new if probe.calls.get(n, 0) == 0]
    if missing:
        raise SurgeryError(f"{label}: {', '.join(missing)} did not run in the model's forward after the surgery")
    return probe
