"""Small helpers shared by every block: channel rounding and tuple normalisation."""
from __future__ import annotations

import collections.abc
from typing import Any


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` without going below ``round_limit * v``.

    The rule of the MobileNet/EfficientNet reference code.
    """
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def to_2tuple(x: Any) -> tuple:
    """``3 -> (3, 3)``; a pair stays a pair."""
    if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
        t = tuple(x)
        if len(t) != 2:
            raise ValueError(f"expected an int or a pair, got {x!r}")
        return t
    return (x, x)


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
