"""Small helpers shared by every block: channel rounding, bottleneck widths, tuple normalisation, argument
checks, and keyword renames with a deprecation period."""
from __future__ import annotations

import collections.abc
import functools
import warnings
from typing import Any, Callable

import torch
from torch.autograd import forward_ad

__all__ = ["make_divisible", "reduced_channels", "to_2tuple", "check_positive_int", "check_divisible",
           "deprecated_kwargs", "deprecated_flag", "records_grad", "transformed", "functorch_wrapped",
           "counts_arithmetic", "to_names"]


def records_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether an operation on ``tensors`` is differentiated: autograd records it (grad mode on and one of them
    requires grad), or forward-mode AD or a ``torch.func`` transform sees one of them (:func:`transformed`).  Where
    none does, a block may work in place, write with ``out=`` or keep fewer temporaries."""
    return (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)) or \
        transformed(*tensors)


# (torch has no public test for these; without it, no tensor is taken for one)
_functorch = getattr(torch._C, "_functorch", None)
_is_wrapped = getattr(_functorch, "is_functorch_wrapped_tensor", lambda t: False)


def functorch_wrapped(x: torch.Tensor) -> bool:
    """Whether ``x`` is a ``torch.func`` transform's tensor (inside ``vmap``, ``grad``, ``jvp``, ``jacrev``,
    ``jacfwd``, ``hessian``); False while ``torch.compile`` traces."""
    return not torch.compiler.is_compiling() and _is_wrapped(x)


def transformed(*tensors: torch.Tensor | None) -> bool:
    """Whether a ``torch.func`` transform (``vmap``, ``grad``, ``jvp``, ``jacrev``, ``jacfwd``, ``hessian``) or
    forward-mode AD (a ``torch.autograd.forward_ad`` dual tensor) sees one of ``tensors``, with grad mode on or off:
    their ops have no ``out=`` form (no batching rule, no forward derivative), so a fast path that writes with
    ``out=`` must not be taken.  (Layout choices, which only ``vmap`` forbids, ask :func:`functorch_wrapped`.)
    False while ``torch.compile`` or ``torch.jit.trace`` traces (their graphs decide)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    dual = getattr(forward_ad, "_current_level", 0) >= 0  # (a dual level is open: -1 when none; unknown: look)
    return any(t is not None and (_is_wrapped(t) or (dual and forward_ad.unpack_dual(t).tangent is not None))
               for t in tensors)


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` without going below ``round_limit * v``.

    The rule of the MobileNet/EfficientNet reference code.
    """
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def reduced_channels(channels: int, reduction: float, rd_channels: int | None = None, min_channels: int = 1,
                     divisor: int | None = None) -> int:
    """The width of a bottleneck that squeezes ``channels`` by ``reduction``: the library's one vocabulary.

    ``rd_channels`` (an explicit width) wins when given; otherwise ``max(min_channels, channels // reduction)``,
    or, with ``divisor``, :func:`make_divisible` of ``channels / reduction`` (MobileNet/EfficientNet rounding).
    """
    if rd_channels is not None:
        return check_positive_int("rd_channels", rd_channels)
    if isinstance(reduction, bool) or not isinstance(reduction, (int, float)) or not reduction > 0:
        raise ValueError(f"reduction must be a positive number, got {reduction!r}")
    if divisor is not None:
        return make_divisible(channels / reduction, divisor, min_value=min_channels)
    return max(min_channels, int(channels // reduction))


def deprecated_kwargs(**renames: str) -> Callable:
    """Decorator for ``__init__``/functions whose keyword arguments were renamed: ``old=value`` keeps working,
    mapped to the new name with a ``DeprecationWarning``; passing both names is a ``TypeError``.

    >>> @deprecated_kwargs(reduction_factor="reduction")
    ... def __init__(self, channels, reduction=16): ...
    """

    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__qualname__}: got both {old!r} (deprecated) and {new!r}; pass {new!r}")
                    warnings.warn(f"{fn.__qualname__}: {old!r} is deprecated, use {new!r}", DeprecationWarning,
                                  stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        wrapper.__deprecated_kwargs__ = dict(renames)
        return wrapper

    return decorator


def to_2tuple(x: Any) -> tuple:
    """``3 -> (3, 3)``; a pair stays a pair."""
    if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
        t = tuple(x)
        if len(t) != 2:
            raise ValueError(f"expected an int or a pair, got {x!r}")
        return t
    return (x, x)


def to_names(x: str | collections.abc.Iterable[str]) -> tuple[str, ...]:
    """``"head.fc" -> ("head.fc",)``; a sequence of names stays one (a model's ``classifier``, which names the
    classifier or, as a tuple, every classifier a checkpoint's class count shapes, the first the main one)."""
    return (x,) if isinstance(x, str) else tuple(x)


def check_positive_int(name: str, value: Any) -> int:
    """Validate a hyper-parameter that must be a positive int; return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def check_divisible(name: str, value: int, divisor_name: str, divisor: int) -> None:
    """Raise ``ValueError`` unless ``value`` is divisible by ``divisor`` (both named in the message)."""
    if divisor <= 0 or value % divisor != 0:
        raise ValueError(f"{name} ({value}) must be divisible by {divisor_name} ({divisor})")


def deprecated_flag(flag: str, keyword: str, value: Any) -> Callable:
    """Decorator for ``__init__``/functions: the deprecated boolean keyword ``flag`` keeps working with a
    ``DeprecationWarning``; ``flag=True`` means ``keyword=value``, ``flag=False`` leaves ``keyword`` as it is.
    Passing ``flag=True`` together with ``keyword`` is a ``TypeError``.

    >>> @deprecated_flag("use_se", "attn_layer", "se")
    ... def __init__(self, channels, attn_layer=None): ...
    """

    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if flag in kwargs:
                warnings.warn(f"{fn.__qualname__}: {flag!r} is deprecated, use {keyword}={value!r}",
                              DeprecationWarning, stacklevel=2)
                if kwargs.pop(flag):
                    if kwargs.get(keyword) is not None:
                        raise TypeError(f"{fn.__qualname__}: got both {flag!r} (deprecated) and {keyword!r}; "
                                        f"pass {keyword!r}")
                    kwargs[keyword] = value
            return fn(*args, **kwargs)

        return wrapper

    return decorator


try:  # a private module of torch's: a torch without it only counts fast forms' arithmetic under dispatch modes
    from torch.utils._python_dispatch import is_in_torch_dispatch_mode as _in_dispatch_mode
except ImportError:  # pragma: no cover
    def _in_dispatch_mode() -> bool:
        return False


def counts_arithmetic(x: torch.Tensor) -> bool:
    """True where a fast form must give way to the network's own arithmetic: on the meta device and under a
    dispatch mode (``torch.utils.flop_counter`` counts what runs, and a mean computed as a matrix product, or a
    convolution as a banded one, would count the form's multiply-adds, not the network's)."""
    return x.device.type == "meta" or _in_dispatch_mode()
