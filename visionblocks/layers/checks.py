"""Input validation shared by every block: wrong rank or channel count gives a ``ValueError`` naming the
expected and the received shape, never an error from deep inside torch.

The checks read only static sizes, so they cost nothing under ``torch.compile`` and ``torch.export``.
``check_odd`` validates a constructor hyper-parameter (odd kernel sizes).
"""
from __future__ import annotations

import torch

__all__ = ["check_nchw", "check_nlc", "check_size", "check_tokens", "check_odd"]


def _fail(name: str, expected: str, x: torch.Tensor) -> ValueError:
    return ValueError(f"{name} expects input of shape {expected}, got {tuple(x.shape)}")


def check_nchw(x: torch.Tensor, channels: int | None, name: str = "block") -> None:
    """``x`` must be (B, channels, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        raise _fail(name, f"(B, {channels if channels is not None else 'C'}, H, W)", x)


def check_nlc(x: torch.Tensor, dim: int | None, name: str = "block") -> None:
    """``x`` must be (B, N, dim)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 3 or (dim is not None and x.shape[2] != dim):
        raise _fail(name, f"(B, N, {dim if dim is not None else 'C'})", x)


def check_tokens(x: torch.Tensor, num_tokens: int, name: str = "block") -> None:
    """For token-mixing blocks tied to a token count by design: N of the (B, N, C) ``x`` must be ``num_tokens``."""
    if x.shape[1] != num_tokens:
        raise ValueError(f"{name} is built for {num_tokens} tokens (token mixing is tied to the token count "
                         f"by design); got input of shape {tuple(x.shape)} with {x.shape[1]} tokens")


def check_size(x: torch.Tensor, size: tuple[int, int], name: str = "block") -> None:
    """For blocks tied to a spatial size by design: (H, W) of ``x`` must equal ``size``."""
    if tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(f"{name} is built for spatial size {tuple(size)} (fixed by design); "
                         f"got input of shape {tuple(x.shape)} with size {tuple(x.shape[-2:])}")


def check_odd(name: str, value: int, why: str = "") -> int:
    """A hyper-parameter that must be odd (a kernel centred on each location, "same" padding); return it.

    Raises ``ValueError("{name} must be odd ({why}), got {value}")`` (without the parenthesis when ``why`` is
    empty).
    """
    if value % 2 == 0:
        raise ValueError(f"{name} must be odd{f' ({why})' if why else ''}, got {value}")
    return value

