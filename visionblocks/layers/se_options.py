"""How a block whose paper puts squeeze-and-excitation inside it (Hu et al., Squeeze-and-Excitation Networks,
CVPR 2018, arXiv 1709.01507; MBConv, Ghost bottlenecks, CoAtNet's MBConv...) takes it: ``attn_layer="se"`` with
the paper's SE width and activations as defaults (:func:`se_kwargs`), and the older ``se_ratio=r`` keyword
kept working for a deprecation period (:func:`deprecated_se_ratio`)."""
from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any, Callable

from .create_attn import get_attn_layer
from .layer_type import LayerType
from .squeeze_excite import SqueezeExcite

__all__ = ["se_kwargs", "deprecated_se_ratio"]


def se_kwargs(attn_layer: LayerType, attn_kwargs: dict | None, rd_channels: int, **defaults: Any) -> dict:
    """``attn_kwargs`` completed with a block's paper defaults when ``attn_layer`` is squeeze-and-excitation:
    its width ``rd_channels`` (unless the caller set ``rd_channels`` or ``reduction``) and ``defaults`` (e.g. the
    block's ``act_layer``, a ``gate_layer``); other attention layers get ``attn_kwargs`` unchanged."""
    kwargs = dict(attn_kwargs or {})
    if get_attn_layer(attn_layer) is SqueezeExcite:
        if "reduction" not in kwargs:
            kwargs.setdefault("rd_channels", rd_channels)
        for key, value in defaults.items():
            kwargs.setdefault(key, value)
    return kwargs


def deprecated_se_ratio(rd_channels: Callable[[dict, float], int]) -> Callable:
    """Decorator for the ``__init__`` of a block that took ``se_ratio=r`` before ``attn_layer=``: the old keyword
    keeps working, with a ``DeprecationWarning``, as ``attn_layer="se", attn_kwargs={"rd_channels":
    rd_channels(arguments, r)}`` (``arguments``: the call's arguments by name, defaults applied), or
    ``attn_layer=None`` for ``r = 0``.  Passing ``se_ratio`` together with ``attn_layer`` is a ``TypeError``.

    >>> @deprecated_se_ratio(lambda a, r: max(1, int(a["in_channels"] * r)))
    ... def __init__(self, in_channels, attn_layer="se", attn_kwargs=None): ...
    """

    def decorator(init: Callable) -> Callable:
        signature = inspect.signature(init)

        @functools.wraps(init)
        def wrapper(*args, **kwargs):
            if "se_ratio" not in kwargs:
                return init(*args, **kwargs)
            ratio = kwargs.pop("se_ratio")
            warnings.warn(f"{init.__qualname__}: 'se_ratio' is deprecated, use attn_layer='se' (attn_kwargs="
                          f"{{'rd_channels': n}} for another width) or attn_layer=None", DeprecationWarning,
                          stacklevel=2)
            if "attn_layer" in kwargs:
                raise TypeError(f"{init.__qualname__}: got both 'se_ratio' (deprecated) and 'attn_layer'; "
                                f"pass 'attn_layer'")
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"se_ratio must be in [0, 1], got {ratio}")
            if ratio > 0:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                kwargs["attn_layer"] = "se"
                kwargs["attn_kwargs"] = {"rd_channels": rd_channels(bound.arguments, ratio),
                                         **(kwargs.get("attn_kwargs") or {})}
            else:
                kwargs["attn_layer"] = None
            return init(*args, **kwargs)

        return wrapper

    return decorator
