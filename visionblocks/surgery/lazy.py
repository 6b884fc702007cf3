"""``lazy``: a block whose channel count is taken from its first input, with the semantics of torch's lazy modules
(``torch.nn.modules.lazy.LazyModuleMixin``): materialised once, on the first call, after which it *is* the block --
its class, parameters and state-dict keys are those of ``block(channels, ...)`` built directly, so ``state_dict``,
``load_state_dict``, ``deepcopy``, pickling and ``torch.compile`` see an ordinary module.

This is what networks configured by width (a YAML line that does not know the channel count of the layer before it,
a model scaled from n to x) need.
"""
from __future__ import annotations

import functools
import sys
import threading
import warnings
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.nn.modules.lazy import LazyModuleMixin

from visionblocks.layers import conv_weights_channels_last, fx_leaf, fx_proxy, is_channels_last

from ._core import _HOOK_DICTS, BlockSpec, SurgeryError, become, resolve_block

__all__ = ["LazyBlock", "lazy"]


class LazyBlock(LazyModuleMixin, nn.Module):
    """``block(C, *args, **kwargs)`` built on the first call, C the channel count (dim 1) of the first input.

    A ``conv``-layout block gets ``out_channels=C`` unless given, a fixed-size block ``size=(H, W)`` of that input.
    The block is built on the device the lazy module was moved to (else the input's) with its floating dtype (else
    the default dtype), then this module turns into it (like ``LazyConv2d`` into ``Conv2d``).  Attributes set on the
    lazy module by a framework (ultralytics' ``i``/``f``/``type``) and its hooks are kept.  Create optimizers after
    the first call (as for any lazy module), and freeze after it: until then there is no parameter for
    ``requires_grad_(False)`` to reach, and the block is built trainable.  Its convolution weights are stored
    channels-last when the first input is.

    The arguments of a registered block are checked at creation (the block is built once on the meta device with a
    placeholder channel count); a first call that fails (the build or the block's forward) leaves the module lazy.
    """

    cls_to_become = None

    def __init__(self, block: Any, *args: Any, **kwargs: Any):
        super().__init__()
        spec = resolve_block(block)
        if spec.info is not None and spec.info.layout not in ("nchw", "conv"):
            raise SurgeryError(f"lazy blocks take their channel count from a (B, C, H, W) input: {spec.name!r} has "
                               f"layout {spec.info.layout!r}")
        _check_arguments(spec, args, kwargs)
        _check_values(spec, args, kwargs)
        self.__dict__["spec"] = spec
        # the class this module turns into, when known in advance (torch.compile reads it before the first call)
        factory = spec.factory.func if isinstance(spec.factory, functools.partial) else spec.factory
        self.cls_to_become = factory if isinstance(factory, type) else None
        self.block_args, self.block_kwargs = tuple(args), dict(kwargs)
        self._lazy_device: torch.device | None = None
        self._lazy_dtype: torch.dtype | None = None
        self.__dict__["_lazy_own"] = frozenset(self.__dict__) | {"_lazy_own", "_initialize_hook", "_load_hook"}

    # -- materialisation ---------------------------------------------------------------------------------------

    def materialize(self, channels: int, size: tuple[int, int] | None = None,
                    device: torch.device | None = None) -> nn.Module:
        """Build the block for ``channels`` (and ``size``) now and turn into it; returns this module (now the
        block).  Called by the first forward."""
        spec: BlockSpec = self.spec
        kwargs = spec.kwargs_for(channels, size, self.block_kwargs)
        block = spec.build(channels, *self.block_args, where=f"a lazy block's first input ({channels} channels)",
                           **kwargs)
        dtype = self._lazy_dtype or torch.get_default_dtype()
        block = block.to(device=self._lazy_device or device or "cpu", dtype=dtype).train(self.training)
        for handle in ("_initialize_hook", "_load_hook"):
            if handle in self.__dict__:
                self.__dict__.pop(handle).remove()
        carry = [k for k in self.__dict__ if k not in self._lazy_own]
        return become(self, block, carry=carry)

    def initialize_parameters(self, *args: Any, **kwargs: Any) -> None:  # LazyModuleMixin's hook: see below
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise SurgeryError(f"lazy {self.spec.name!r} takes its channel count from a (B, C, H, W) input, got {shape}")
        self.materialize(x.shape[1], tuple(x.shape[2:]), device=x.device)
        if is_channels_last(x):  # laid out like the maps it sees (as insert/replace place a block)
            conv_weights_channels_last(self)

    def _infer_parameters(self, module: nn.Module, args: tuple, kwargs: dict | None = None) -> None:
        # LazyModuleMixin's forward pre-hook (torch.compile calls it too): initialize_parameters removes the hooks and
        # turns the module into the block itself, so there is nothing left for the mixin's version to do.  The
        # forward that follows (below) turns the module back into this lazy one if it fails.
        # Several threads may make the first call at once (a server sharing one network): one builds the block,
        # the others, whose calls began before the hooks were removed, find it built and run it.
        if fx_proxy(args, kwargs or {}) is not None:
            return  # torch.fx symbolic tracing: a leaf, built when the traced network first runs (see forward)
        with _build_lock:
            if not isinstance(module, LazyBlock):
                return
            _refuse_inside_distributed(module)
            undo = _undo_of(module)
            module.initialize_parameters(*args, **(kwargs or {}))
        _first_call.pending = (module, undo)

    def _lazy_load_hook(self, state_dict, prefix, *args) -> None:
        if any(k.startswith(prefix) for k in state_dict):
            raise RuntimeError(f"lazy block {self.spec.name!r} at {prefix.rstrip('.') or 'the root'!r} is not built yet, "
                               "so it cannot load a state dict: run one forward first (or call .materialize(channels))")

    def _apply(self, fn, recurse: bool = True):
        # remember .to()/.cuda()/.double() calls made before the first input, for the block built then
        ref = torch.empty(0, device=self._lazy_device or "cpu", dtype=self._lazy_dtype or torch.get_default_dtype())
        moved = fn(ref)
        if isinstance(moved, torch.Tensor):
            self._lazy_device, self._lazy_dtype = moved.device, moved.dtype
        return super()._apply(fn, recurse)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # The first call's pre-hook turned this module into the block, but the call already bound this method.
        if isinstance(self, LazyBlock):
            # as torch's lazy layers: one call_module node, the same module object (traced as the root module,
            # *args itself is a Proxy, and fx_leaf refuses)
            proxy = args if isinstance(args, torch.fx.Proxy) else fx_proxy(args, kwargs)
            if proxy is not None:
                return fx_leaf(self, f"lazy {self.spec.name!r} (not built yet)", proxy.tracer, args, kwargs)
            raise RuntimeError(f"lazy block {self.spec.name!r} was called without its initialisation hook")
        module, undo = getattr(_first_call, "pending", (None, None))
        _first_call.pending = (None, None)
        try:
            return type(self).forward(self, *args, **kwargs)
        except BaseException:
            if module is self:
                undo()
            raise

    def extra_repr(self) -> str:
        shown = [repr(a) for a in self.block_args] + [f"{k}={v!r}" for k, v in self.block_kwargs.items()]
        return f"{self.spec.name}(<channels from the first input>{''.join(', ' + s for s in shown)})"


# the lazy module whose first call is under way (its pre-hook materialised it) and how to undo that
_first_call = threading.local()
_build_lock = threading.Lock()


def _refuse_inside_distributed(module: LazyBlock) -> None:
    """Refuse a first call inside a network that ``DistributedDataParallel`` or FSDP's ``fully_shard`` already
    wraps: they took the network's parameters when they wrapped it (to broadcast or shard them and to average their
    gradients), so a block built now would train apart on every rank, silently.  torch refuses its own unbuilt lazy
    layers when DDP wraps them; a lazy block has no placeholder parameter to show (frameworks count parameters when
    they build a network), so it is refused here, at its first call.  Both checks read torch's own records (the DDP
    whose forward is running; the modules ``fully_shard`` manages) and cost nothing when neither is in use."""
    ddp = sys.modules.get("torch.nn.parallel.distributed")
    active = ddp.DistributedDataParallel._get_active_ddp_module() if ddp is not None else None
    wrapper = "DistributedDataParallel" if active is not None and _holds(active.module, module) else None
    fsdp = sys.modules.get("torch.distributed.fsdp._fully_shard._fully_shard")
    states = sys.modules.get("torch.distributed._composable_state")
    if wrapper is None and fsdp is not None and states is not None:
        roots = list(getattr(states, "_module_state_mapping", {}).keys())
        if any(isinstance(r, fsdp.FSDPModule) and _holds(r, module) for r in roots):
            wrapper = "fully_shard (FSDP)"
    if wrapper is not None:
        raise SurgeryError(f"lazy {module.spec.name!r} is not built yet and its first call is inside a network that "
                           f"{wrapper} wraps: it took the network's parameters when it wrapped it, so this block's "
                           "would be neither synchronised nor averaged across ranks. Run one forward (on any input of "
                           "the right channel count) before wrapping, as for torch's lazy modules")


def _holds(root: nn.Module, module: nn.Module) -> bool:
    return any(m is module for m in root.modules())


def _undo_of(module: LazyBlock) -> Callable[[], None]:
    """A function that turns ``module`` (materialised since) back into the lazy module it is now, with its hooks."""
    state, cls = dict(module.__dict__), type(module)
    hooks = {k: dict(state[k]) for k in _HOOK_DICTS if k in state}

    def undo() -> None:
        module.__dict__.clear()
        module.__dict__.update(state)
        module.__class__ = cls
        for k, content in hooks.items():  # the same dicts (handles refer to them), their entries as they were
            state[k].clear()
            state[k].update(content)
    return undo


# a channel count divisible by every group/head count in use (8! = 2^7 3^2 5 7): the second placeholder
_PLACEHOLDER_CHANNELS = 40320


def _check_values(spec: BlockSpec, args: tuple, kwargs: dict) -> None:
    """Refuse now (not at the first forward) argument values a registered block refuses whatever the channel count.

    The block is built on the meta device (nothing allocated, no random numbers drawn) with its example's channel
    count, then, if that fails, with a highly divisible one; the arguments are refused only when both builds fail
    with the same message (a failure that names the channel count, or goes away with another one, depends on the
    input and waits for it).  A fixed-size block (its size comes from the input too) and an unregistered class or
    factory are not built."""
    info = spec.info
    if info is None or info.fixed_size:
        return
    ex = info.example
    example_c = ex.kwargs.get("channels", ex.kwargs.get("in_channels", ex.args[0] if ex.args else None))
    errors = []
    for c in dict.fromkeys(c for c in (example_c, _PLACEHOLDER_CHANNELS) if isinstance(c, int)):
        try:
            with torch.device("meta"), torch.random.fork_rng(devices=[]), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                spec.build(c, *args, where=f"lazy({spec.name!r}) (a placeholder of {c} channels)",
                           **spec.kwargs_for(c, None, kwargs))
            return
        except SurgeryError as e:
            errors.append(e)
        except Exception:  # noqa: BLE001 -- a constructor the meta device cannot run: not checked here
            return
    causes = {f"{type(e.__cause__).__name__}: {e.__cause__}" for e in errors}
    if len(errors) == 2 and len(causes) == 1:
        raise errors[0]


def _check_arguments(spec: BlockSpec, args: tuple, kwargs: dict) -> None:
    """Refuse now (not at the first forward) arguments the block's constructor does not take."""
    if not spec.params:
        return
    names = list(spec.params)[1:]  # after the channel count
    positional = [n for n in names if spec.params[n].kind in (spec.params[n].POSITIONAL_ONLY,
                                                              spec.params[n].POSITIONAL_OR_KEYWORD)]
    if len(args) > len(positional):
        raise SurgeryError(f"block {spec.name!r} takes at most {len(positional)} arguments after the channel count "
                           f"({', '.join(positional)}), got {len(args)}: {list(args)} (its constructor: "
                           f"{spec.name}{spec.signature_text()})")
    unknown = [k for k in kwargs if k not in spec.params] if not spec.var_kwargs else []
    twice = [n for n in positional[:len(args)] if n in kwargs]
    if unknown or twice:
        what = f"unknown arguments {unknown}" if unknown else f"arguments given twice {twice}"
        raise SurgeryError(f"block {spec.name!r}: {what} (its constructor: {spec.name}{spec.signature_text()})")


def lazy(block: Any, /, *args: Any, **kwargs: Any) -> LazyBlock:
    """A :class:`LazyBlock`: ``block`` (a registry name, a class or a factory) built with the channel count of its
    first input, then ``*args``/``**kwargs``.

    >>> gate = lazy("cbam", reduction=8)
    >>> y = gate(torch.randn(2, 48, 14, 14))   # now a CBAM(48, reduction=8)
    """
    return LazyBlock(block, *args, **kwargs)
