"""Boolean switches replaced by a general keyword, with a deprecation period (``use_se=True`` ->
``attn_layer="se"``): the companion of :func:`visionblocks.layers.deprecated_kwargs`, which renames a keyword
whose value keeps its meaning."""
from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

__all__ = ["deprecated_flag"]


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
