"""timm (PyTorch Image Models) integration: a visionblocks block as timm's ``attn_layer``.

timm builds a block's attention with ``create_attn(attn_layer, channels, device=, dtype=)`` (ResNet/ResNeXt
``block_args``, and every model that calls ``create_attn``), so any callable taking the channel count works -- once
it also takes the ``device``/``dtype`` keywords that timm passes.  :func:`timm_attn` is that callable::

    import timm
    from visionblocks.integrations.timm import timm_attn
    net = timm.create_model("resnet50", block_args={"attn_layer": timm_attn("cbam")})

It does not import timm.  ``visionblocks.insert``/``replace`` work on timm models as on any ``nn.Module`` (the
``"se"`` preset recognises timm's ResNet blocks and EfficientNet/MobileNet inverted residuals).
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from visionblocks.surgery._core import SurgeryError, resolve_block

__all__ = ["TimmAttn", "timm_attn"]


class TimmAttn:
    """``block(channels, **kwargs)`` as timm calls an attention layer: ``attn(channels, device=None, dtype=None,
    **more)``; keywords timm adds (an ``act_layer``, ...) reach the block when its constructor takes them, and raise a
    ``TypeError`` naming them otherwise.  The arguments given to :func:`timm_attn` win over timm's."""

    def __init__(self, block: Any, **kwargs: Any):
        spec = resolve_block(block)
        if spec.info is not None and spec.info.layout != "nchw":
            raise SurgeryError(f"timm's attn_layer maps (B, C, H, W) to the same shape: {spec.name!r} has layout "
                               f"{spec.info.layout!r}, not 'nchw'")
        self.block, self.kwargs = block, dict(kwargs)

    def __call__(self, channels: int, device: Any = None, dtype: Any = None, **timm_kwargs: Any) -> nn.Module:
        spec = resolve_block(self.block)
        refused = [k for k in timm_kwargs if k not in self.kwargs and not spec.accepts(k)]
        if refused:
            raise TypeError(f"timm passed {', '.join(f'{k}={timm_kwargs[k]!r}' for k in refused)} to {spec.name!r}, "
                            f"which does not take {'it' if len(refused) == 1 else 'them'} (its constructor: "
                            f"{spec.name}{spec.signature_text()})")
        module = spec.build(channels, where="timm's attn_layer", **{**timm_kwargs, **self.kwargs})
        if device is not None or dtype is not None:
            module = module.to(device=device, dtype=dtype)
        return module

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"timm_attn({self.block!r}{args})"


def timm_attn(block: Any, **kwargs: Any) -> TimmAttn:
    """A visionblocks block (a registry name of an ``nchw`` block, a class or a factory) as timm's ``attn_layer``,
    built as ``block(channels, **kwargs)``."""
    return TimmAttn(block, **kwargs)
