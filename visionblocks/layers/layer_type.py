"""The type of ``act_layer``/``norm_layer``/``attn_layer`` arguments: a registered name, a module class or
factory, or ``None`` for none."""
from __future__ import annotations

from typing import Callable, Union

import torch.nn as nn

__all__ = ["LayerType"]

LayerType = Union[str, type[nn.Module], Callable[..., nn.Module], None]
