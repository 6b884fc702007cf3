"""The one validation layer: every block's constructor arguments are checked where they enter, and every
forward refuses what it cannot answer right, with a ``ValueError``/``TypeError`` raised here that names the
argument, the value received and what is allowed (never an error from deep inside torch, never a NaN).

A block opts in with the class decorator :func:`validated`::

    @register_block("my_gate", ...)
    @validated(kernel_size="odd")          # per-block kinds override the name-based defaults
    class MyGate(nn.Module): ...

Arguments are checked by *name* against :data:`ARG_KINDS` (one meaning per name across the library:
``kernel_size`` is a positive int or pair, ``attn_drop`` a probability in [0, 1), ``eps`` a positive finite
float...), with per-block overrides; a parameter whose default is ``None`` also accepts ``None``.  The kinds
are data (:data:`KINDS`), so the property test draws valid and just-invalid values from the same table.

The forward guard (eager only; nothing is checked under ``torch.compile``/``torch.export`` tracing):

* dtype rule, one for all blocks: the input must be a floating tensor (``TypeError`` naming its dtype), of the
  module's own floating dtype (``TypeError`` naming both), except under ``torch.autocast``, where mixed
  dtypes are autocast's business.  Parameter-free blocks take any floating dtype.
* batch 1 in training: blocks that put BatchNorm on pooled (1x1) features by the paper's design (declared with
  ``pooled_bn="where"``) refuse it with a ``ValueError`` naming the block and the reason; any other BatchNorm
  that sees a single value per channel (a map pooled or strided to 1x1 at batch 1) is reported the same way.
  Batch 1 always works in eval.  :func:`blocks_with_pooled_bn` lists the former from the registry.
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
import types
from typing import Any, Callable

import torch
import torch.fx
import torch.nn as nn

from .norm import LayerNorm2d

_Proxy = torch.fx.Proxy

__all__ = [
    "KINDS", "ARG_KINDS", "check_arg", "validated", "check_input_dtype", "blocks_with_pooled_bn",
    "check_int", "check_odd_int", "check_size_arg", "check_probability", "check_positive_float",
    "check_padding", "norm_layer_2d", "check_conv_input", "conv_chain_min_size", "check_module", "fx_proxy", "fx_leaf",
]


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _type_error(name: str, value: Any, allowed: str) -> TypeError:
    return TypeError(f"{name} must be {allowed}, got {type(value).__name__} ({value!r})")


def _value_error(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{name} must be {allowed}, got {value!r}")


# ------------------------------------------------------------------------------------------- scalar checks
def check_int(name: str, value: Any, low: int = 1) -> int:
    """An int ``>= low`` (bools, floats and strings refused); return it."""
    if not _is_int(value):
        raise _type_error(name, value, "an int")
    if value < low:  # the wording of layers.check_positive_int
        raise ValueError(f"{name} must be {'positive' if low == 1 else f'>= {low}'}, got {value!r}")
    return int(value)


def check_odd_int(name: str, value: Any) -> int:
    """A positive odd int (a kernel centred on each location)."""
    check_int(name, value)
    if value % 2 == 0:
        raise _value_error(name, value, "a positive odd int (a kernel centred on each location)")
    return value


def check_size_arg(name: str, value: Any, low: int = 1, odd: bool = False) -> Any:
    """An int ``>= low`` or a pair of them (kernel sizes, strides, dilations, spatial sizes); returned as given."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    allowed = f"{'an odd' if odd else 'an'} int >= {low} or a pair of them"
    if isinstance(value, (tuple, list)) and len(items) != 2:
        raise _value_error(name, value, allowed)
    for v in items:
        if not _is_int(v):
            raise _type_error(name, value, allowed)
        if v < low or (odd and v % 2 == 0):
            raise _value_error(name, value, allowed)
    return value


def check_probability(name: str, value: Any) -> float:
    """A dropout-like rate: a finite number in [0, 1)."""
    if not _is_real(value):
        raise _type_error(name, value, "a number in [0, 1)")
    if not 0.0 <= value < 1.0:  # NaN fails too
        raise _value_error(name, value, "a number in [0, 1)")
    return value


def check_positive_float(name: str, value: Any, allow_zero: bool = False) -> float:
    """A finite number ``> 0`` (``>= 0`` with ``allow_zero``)."""
    allowed = "a finite number >= 0" if allow_zero else "a positive number (finite)"
    if not _is_real(value):
        raise _type_error(name, value, allowed)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise _value_error(name, value, allowed)
    return value


def check_padding(name: str, value: Any) -> Any:
    """``None`` ("same", where the block offers it) or an int >= 0 or a pair of them; strings such as
    ``"same"`` are refused (pass ``padding=None``)."""
    if value is None:
        return value
    if isinstance(value, str):
        raise _type_error(name, value, "None ('same' padding) or an int >= 0 or a pair of them")
    return check_size_arg(name, value, low=0)


def _check_ints(name: str, value: Any, odd: bool = False) -> Any:
    allowed = f"a non-empty tuple of positive{' odd' if odd else ''} ints"
    if not isinstance(value, (tuple, list)):
        raise _type_error(name, value, allowed)
    if not value:
        raise _value_error(name, value, allowed)
    for v in value:
        if not _is_int(v):
            raise _type_error(name, value, allowed)
        if v < 1 or (odd and v % 2 == 0):
            raise _value_error(name, value, allowed)
    return value


def _check_pos_floats(name: str, value: Any) -> Any:
    if not isinstance(value, (tuple, list)):
        raise _type_error(name, value, "a tuple of positive finite numbers")
    for v in value:
        check_positive_float(name, v)
    return value


def _check_unit(name: str, value: Any) -> Any:
    if not _is_real(value):
        raise _type_error(name, value, "a number in [0, 1]")
    if not 0.0 <= value <= 1.0:
        raise _value_error(name, value, "a number in [0, 1]")
    return value


def _check_real(name: str, value: Any) -> Any:
    if not _is_real(value):
        raise _type_error(name, value, "a finite number")
    if not math.isfinite(value):
        raise _value_error(name, value, "a finite number")
    return value


def _check_bool(name: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise _type_error(name, value, "a bool")
    return value


def _check_act(name: str, value: Any) -> Any:
    from .activations import get_act_layer  # noqa: PLC0415
    try:
        get_act_layer(value)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{name}: {e}") from None
    return value


_NCHW_REFUSED = {"batchnorm1d": "it normalises (B, C, L) tensors", "layernorm": None, "ln": None}


def norm_layer_2d(name: str, value: Any, pooled: bool = False) -> Any:
    """A norm for NCHW features: ``"layernorm"``/``"ln"`` (and ``nn.LayerNorm``) mean the channels-first
    :class:`LayerNorm2d` here; ``"batchnorm1d"`` is refused by name, and with ``pooled`` (the norm sees a
    pooled 1x1 map) so is ``"instancenorm"`` (one spatial element has no statistics).  Returns the value to
    use."""
    from .norm import get_norm_layer  # noqa: PLC0415
    key = value.lower() if isinstance(value, str) else None
    if key in ("layernorm", "ln") or value is nn.LayerNorm:
        return LayerNorm2d
    try:
        cls = get_norm_layer(value)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{name}: {e}") from None
    if cls is nn.BatchNorm1d:
        raise _value_error(name, value, "a norm for NCHW features ('batchnorm', 'layernorm2d', 'groupnorm1'...; "
                                        "BatchNorm1d takes (B, C, L))")
    if pooled and cls is nn.InstanceNorm2d:
        raise _value_error(name, value, "a norm that works on pooled 1x1 features (instance norm has no "
                                        "statistics over one spatial element)")
    return value


def _check_attn(name: str, value: Any) -> Any:
    from .create_attn import get_attn_layer  # noqa: PLC0415
    try:
        get_attn_layer(value)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{name}: {e}") from None
    return value


def _check_dict(name: str, value: Any) -> Any:
    if not isinstance(value, dict):
        raise _type_error(name, value, "a dict")
    return value


def _choice(*options: Any) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if value not in options:
            raise _value_error(name, value, f"one of {options}")
        return value
    check.options = options
    return check


#: kind -> check(name, value) -> value to use
KINDS: dict[str, Callable[[str, Any], Any]] = {
    "int": check_int,
    "int0": lambda n, v: check_int(n, v, low=0),
    "odd": check_odd_int,
    "size": check_size_arg,
    "odd_size": lambda n, v: check_size_arg(n, v, odd=True),
    "size0": lambda n, v: check_size_arg(n, v, low=0),
    "ints": _check_ints,
    "odd_ints": lambda n, v: _check_ints(n, v, odd=True),
    "prob": check_probability,
    "pos": check_positive_float,
    "nonneg": lambda n, v: check_positive_float(n, v, allow_zero=True),
    "pos_floats": _check_pos_floats,
    "unit": _check_unit,
    "real": _check_real,
    "padding": check_padding,
    "bool": _check_bool,
    "act": _check_act,
    "norm2d": norm_layer_2d,
    "pooled_norm2d": lambda n, v: norm_layer_2d(n, v, pooled=True),
    "attn": _check_attn,
    "dict": _check_dict,
    "padding_mode": _choice("zeros", "reflect", "replicate", "circular"),
    "any": lambda n, v: v,
}

_INTS = ("channels in_channels out_channels dim in_features out_features num_heads num_tokens seq_len window_size "
         "dim_head num_layers memory_units num_experts num_kernels levels part scale base_width radix "
         "group_channels pooling_r key_groups share_planes embed_reduction dw_size depth_multiplier num_dilated "
         "sr_ratio block_size num_branches fc3_groups fc1_fc2_reduction ch1x1 ch3x3red ch3x3 ch5x5red ch5x5 "
         "pool_proj c_m c_n min_channels offset_groups D_mul transformer_dim ffn_dim num_classes h w "
         "groups rd_channels internal_channels mid_channels").split()

#: parameter name -> kind, the same meaning in every block (a block may override with ``@validated(name=kind)``)
ARG_KINDS: dict[str, str] = {
    **{n: "int" for n in _INTS},
    "halo_size": "int0", "output_padding": "size0",
    "reduction": "pos", "qk_reduction": "pos", "ratio": "int",
    "kernel_size": "size", "stride": "size", "dilation": "size", "padding": "padding",
    "size": "size", "partition": "size", "rel_size": "size", "patch_size": "size",
    "kernel_sizes": "ints", "dilations": "ints", "out_splits": "ints", "reparam_conv_k": "ints",
    "drop": "prob", "attn_drop": "prob", "proj_drop": "prob", "drop_path": "prob", "drop_rate": "prob",
    "drop_path_rate": "prob",
    "eps": "pos", "mlp_ratio": "pos", "ffn_ratio": "pos", "expand_ratio": "pos", "token_mlp_ratio": "pos",
    "channel_mlp_ratio": "pos", "temperature": "pos", "gamma": "pos", "init_std": "nonneg", "lam": "nonneg",
    "init_values": "real", "b": "real", "temperatures": "pos_floats", "alpha_in": "unit", "alpha_out": "unit",
    "bias": "bool", "qkv_bias": "bool", "proj_bias": "bool", "query_bias": "bool", "deploy": "bool",
    "routing": "bool", "add_self_loops": "bool", "normalize": "bool", "no_spatial": "bool",
    "apply_transform": "bool", "avg_down": "bool",
    "act_layer": "act", "gate_layer": "act", "norm_layer": "norm2d", "attn_layer": "attn", "attn_kwargs": "dict",
    "padding_mode": "padding_mode",
}


def check_arg(name: str, value: Any, kind: str | None = None) -> Any:
    """Validate one argument by its kind (default: :data:`ARG_KINDS` by name); return the value to use."""
    kind = kind or ARG_KINDS.get(name, "any")
    return KINDS[kind](name, value)


# ------------------------------------------------------------------------------------------- forward guard
def check_conv_input(x: torch.Tensor, kernel_size, padding, dilation, name: str) -> None:
    """The padded input of a convolution must hold one (dilated) kernel: ``H + 2 p >= d (k - 1) + 1`` (and the
    same for W); a ``ValueError`` naming the block, its geometry and the input shape otherwise.  Eager only."""
    if torch.compiler.is_compiling() or isinstance(padding, str):
        return
    for i in (0, 1):
        size, k, p, d = x.shape[2 + i], kernel_size[i], padding[i], dilation[i]
        if size + 2 * p < d * (k - 1) + 1:
            raise ValueError(f"{name} with kernel_size={tuple(kernel_size)}, padding={tuple(padding)}, "
                             f"dilation={tuple(dilation)} needs a padded input of at least one (dilated) kernel; "
                             f"got input of shape {tuple(x.shape)}")


def check_module(value: Any, caller: str, what: str = "an nn.Module") -> None:
    """``TypeError`` unless ``value`` is an ``nn.Module``: ``"<caller> expects <what>, got <type>"`` (a model name or
    a checkpoint path passed where the built model goes)."""
    if not isinstance(value, nn.Module):
        raise TypeError(f"{caller} expects {what}, got {type(value).__name__}")


def conv_chain_min_size(modules) -> tuple[int, int]:
    """The smallest (H, W) input that the ``nn.Conv2d`` among ``modules``, applied one after the other (a patch
    embedding, a strided stem), take down to a 1x1 map: working back from the last, each needs
    ``(out - 1) * stride + dilation * (kernel - 1) + 1 - 2 * padding`` (at least 1).  Other modules (norms,
    activations, layers pruned to ``nn.Identity``) and ``padding="same"`` convolutions leave the size as it is."""
    need = [1, 1]
    for conv in reversed([m for m in modules if isinstance(m, nn.Conv2d)]):
        if conv.padding == "same":
            continue
        padding = (0, 0) if conv.padding == "valid" else conv.padding
        for i in (0, 1):
            span = conv.dilation[i] * (conv.kernel_size[i] - 1) + 1
            need[i] = max(1, (need[i] - 1) * conv.stride[i] + span - 2 * padding[i])
    return need[0], need[1]


def _first_float_parameter(module: nn.Module) -> torch.Tensor | None:
    """The first floating parameter in ``module.parameters()`` order (the module's own, then its children's,
    depth first), found by walking the module dicts: no generator or memo set per call (the forward guard runs
    this on every call; it is read each time, since ``.to()``/``.double()`` may change it)."""
    for p in module._parameters.values():
        if p is not None and p.is_floating_point():
            return p
    for child in module._modules.values():
        if child is not None:
            p = _first_float_parameter(child)
            if p is not None:
                return p
    return None


def check_input_dtype(module: nn.Module, x: Any, name: str) -> None:
    """The one dtype rule: ``x`` floating, and of ``module``'s floating dtype (any, for a module without
    floating parameters; not enforced under ``torch.autocast`` nor on the meta device).  The exemptions are
    looked at only on a mismatch: the common call costs a dtype comparison."""
    if not isinstance(x, torch.Tensor):
        return
    if not x.is_floating_point():
        raise TypeError(f"{name} expects a floating-point input, got dtype {x.dtype} (convert it, e.g. x.float())")
    t = _first_float_parameter(module)
    if t is None or t.dtype == x.dtype:
        return
    if x.is_meta or torch.is_autocast_enabled(x.device.type):  # shape-only runs; autocast's own business
        return
    raise TypeError(f"{name} holds {t.dtype} weights and got a {x.dtype} input; convert one to the "
                    f"other (module.to({x.dtype}) or x.to({t.dtype}))")


def _first_tensors(args: tuple) -> list:
    if not args:
        return []
    a = args[0]
    if isinstance(a, (tuple, list)):
        return [t for t in a if isinstance(t, torch.Tensor)]
    return [a] if isinstance(a, torch.Tensor) else []


def _bn_error(name: str, where: str) -> ValueError:
    return ValueError(f"{name} cannot train on a batch of 1 here: {where} sees a single value per channel, "
                      f"so it has no batch statistics (BatchNorm needs more than one value per channel in "
                      f"training). Train with batch >= 2, or run .eval() (batch 1 always works in eval)")


def _has_bn(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def validated(_cls: type | None = None, *, pooled_bn: str | None = None, check_dtype: bool = True,
              **kinds: str) -> Callable[[type], type]:
    """Class decorator: validate ``__init__``'s arguments (by :data:`ARG_KINDS`, overridden by ``kinds``) and
    guard ``forward`` (dtype rule, batch 1 in training); see the module docstring.

    ``pooled_bn`` names where the block puts BatchNorm on pooled features by the paper's design (it then
    refuses training at batch 1 up front, and :func:`blocks_with_pooled_bn` lists it).  ``check_dtype=False``
    leaves dtypes to the block (for inputs that are not features, e.g. indices).
    """

    def decorator(cls: type) -> type:
        init = cls.__init__
        sig = inspect.signature(init)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        renames: dict[str, str] = {}
        f = init
        while f is not None:
            renames.update(getattr(f, "__deprecated_kwargs__", {}))
            f = getattr(f, "__wrapped__", None)
        unknown = set(kinds) - {p.name for p in params}
        if unknown:
            raise TypeError(f"validated({cls.__name__}): no such arguments {sorted(unknown)}")
        for k in kinds.values():
            if k not in KINDS:
                raise ValueError(f"validated({cls.__name__}): unknown kind {k!r}")
        specs = {p.name: (kinds.get(p.name) or ARG_KINDS.get(p.name, "any"), p.default is None) for p in params
                 if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if pooled_bn is not None and specs.get("norm_layer", ("",))[0] == "norm2d":
            specs["norm_layer"] = ("pooled_norm2d", specs["norm_layer"][1])

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            args = list(args)
            for i, value in enumerate(args[:len(positional)]):
                args[i] = _check(positional[i], value)
            for key in list(kwargs):
                new = renames.get(key, key)
                if new in specs:
                    kwargs[key] = _check(new, kwargs[key], new if new == key else f"{key} (now {new})")
            init(self, *args, **kwargs)

        def _check(name: str, value: Any, label: str | None = None) -> Any:
            kind, optional = specs.get(name, ("any", False))
            if value is None and optional:
                return value
            return KINDS[kind](label or name, value)

        forward = cls.forward
        label = getattr(cls, "__name__", "block")

        @functools.wraps(forward)
        def guarded_forward(self, *args, **kwargs):
            if torch.compiler.is_compiling() or torch.jit.is_tracing():
                return forward(self, *args, **kwargs)
            proxy = fx_proxy(args, kwargs)
            if proxy is not None:
                return fx_leaf(self, label, proxy.tracer, args, kwargs)
            xs = _first_tensors(args)
            if check_dtype:
                for x in xs:
                    check_input_dtype(self, x, label)
            if self.training and xs and xs[0].ndim > 0 and xs[0].shape[0] == 1 and _has_bn(self):
                if pooled_bn is not None:
                    raise _bn_error(label, pooled_bn + " (the paper's design)")
                try:
                    return forward(self, *args, **kwargs)
                except ValueError as e:
                    if "Expected more than 1 value per channel" not in str(e):
                        raise
                    raise _bn_error(label, "a BatchNorm on a 1x1 map") from None
            return forward(self, *args, **kwargs)

        cls.__init__ = __init__
        cls.forward = _own_code(guarded_forward, forward, label)
        cls.__arg_kinds__ = {n: k for n, (k, _) in specs.items()}
        cls.__pooled_bn__ = pooled_bn
        return cls

    return decorator(_cls) if _cls is not None else decorator


def fx_proxy(args: tuple, kwargs: dict) -> Any:
    """The first ``torch.fx.Proxy`` argument of a call (symbolic tracing), or None (checked on every eager forward:
    a loop without allocations, ~0.1 us)."""
    for a in args:
        if isinstance(a, _Proxy):
            return a
    if kwargs:
        for a in kwargs.values():
            if isinstance(a, _Proxy):
                return a
    return None


def fx_leaf(module: nn.Module, label: str, tracer: Any, args: tuple, kwargs: dict) -> Any:
    """Under ``torch.fx`` symbolic tracing a block is a leaf, as torch.nn's own layers are: one ``call_module`` node
    (its forward checks shapes and chooses kernels by layout, which a Proxy cannot answer).  So FX-based tools
    (torchvision's ``create_feature_extractor``, FX graph mode quantization) work on any network that contains
    blocks; the block itself as the root of a trace has no parent to call it and is refused."""
    try:
        path = tracer.path_of_module(module)
    except NameError:
        path = ""
    if not path:
        raise TypeError(f"{label}: torch.fx cannot trace a visionblocks block as the root module (it is a leaf "
                        "inside a traced network); use torch.export.export for a graph of the block itself")
    return tracer.create_proxy("call_module", path, args, kwargs)


def _own_code(fn: Callable, wrapped: Callable, label: str) -> Callable:
    """``fn`` with a code object of its own.  torch.compile keeps its compiled graphs per code object, at most
    ``torch._dynamo.config.recompile_limit`` (8) of them: were the guarded forwards of every block one code object,
    the ninth block class compiled in a process would silently run eagerly."""
    code = fn.__code__.replace(co_name=fn.__code__.co_name, co_qualname=f"{label}.forward")
    own = types.FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    return functools.update_wrapper(own, wrapped)


def blocks_with_pooled_bn() -> list[str]:
    """Names of the registered blocks that put BatchNorm on pooled features by their paper's design: they
    train at batch >= 2 only (batch 1 works in eval).  Every other block trains at batch 1 too, as long as no
    BatchNorm sees a single value per channel (a map strided or pooled down to 1x1)."""
    from visionblocks.registry import _BLOCKS  # noqa: PLC0415
    return sorted(n for n, i in _BLOCKS.items() if getattr(i.cls, "__pooled_bn__", None))
