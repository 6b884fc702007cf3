"""Memory format: whether a 4-d map is stored channels-last, the one test every layout-aware block uses.

On the CPU a network whose convolution weights are channels-last (``visionblocks.fuse`` on the CPU,
``visionblocks.to_channels_last``) passes channels-last maps between its layers: a block that reduces, reshapes or
broadcasts against such a map in the (B, C, H, W) order ATen assumes when it allocates a result strides across
it (3-10x slower in the reductions and broadcast products measured at ResNet-stage shapes).  Blocks ask this
test and lay out their small intermediates (pooled planes, gates) to match.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.fx.experimental.symbolic_shapes import guard_or_false
from torch.nn.parameter import is_lazy

from .helpers import functorch_wrapped, records_grad

__all__ = ["is_channels_last", "as_memory_format", "layout_like", "memory_format_of", "cat_channels", "dense_strides",
           "conv_weights_channels_last"]


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-d tensor stored channels-last (C innermost) and not also NCHW-contiguous.

    A tensor that is both (C == 1, or H == W == 1: the two layouts coincide) counts as NCHW, as do
    non-dense views and tensors of other ranks.  Inside a ``torch.func`` transform, where torch can ask no layout
    but the default, a map that is not NCHW-contiguous counts as NCHW too (the layout is a speed choice of the
    block, never a value).
    """
    return (x.ndim == 4 and not x.is_contiguous() and not functorch_wrapped(x)
            and x.is_contiguous(memory_format=torch.channels_last))


def as_memory_format(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """``x`` stored dense in ``memory_format`` (a copy unless it is); inside a ``torch.func`` transform, where torch
    can make no layout but the default, ``x`` as it is (the values are the same)."""
    return x if functorch_wrapped(x) else x.contiguous(memory_format=memory_format)


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a map stored channels-last (:func:`is_channels_last`), else
    ``torch.contiguous_format``."""
    return torch.channels_last if is_channels_last(x) else torch.contiguous_format


def layout_like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``t`` (a 4-d gate or pooled map that broadcasts against ``x``, or a block's output) stored in ``x``'s
    layout: channels-last (C innermost) when ``x`` is, NCHW-contiguous otherwise.  A copy only when ``t`` is laid
    out otherwise (gates are small: a (B, C, H, 1) gate is 1/W of the map).  A block's output keeps its input's
    layout (the contract's ``check_channels_last``), as PyTorch's own layers do.  A product of ``x`` with a gate laid out across its order
    strides through one of the two (at 8x64x28x28: coordinate attention 1.36x slower on a channels-last map with
    NCHW gates).

    With symbolic sizes (``torch.export``/``torch.compile`` with a dynamic H or W) a layout that cannot be decided
    without a guard (a cropped view: whether the crop removed anything) gets the copy, so the traced program does
    not hold the example's answer."""
    fmt = memory_format_of(x)
    if guard_or_false(t.is_contiguous(memory_format=fmt)):
        return t
    return t.clone(memory_format=fmt)


def conv_weights_channels_last(module: nn.Module) -> nn.Module:
    """Store every ``nn.Conv2d`` weight of ``module`` channels-last, in place (values, shapes and parameter
    identity unchanged; no other 4-D parameter or buffer, no lazy or 5-D weight); return it."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d) and not is_lazy(m.weight) and m.weight.dim() == 4:
                m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
    return module


class _CatChannels(torch.autograd.Function):
    """``torch.cat(tensors, dim=1)`` whose backward hands each input its gradient dense, in the input's layout."""

    generate_vmap_rule = True  # (with setup_context: torch.func's transforms can run it)

    @staticmethod
    def forward(*tensors):
        return torch.cat(tensors, dim=1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.sizes = [t.shape[1] for t in inputs]
        ctx.formats = [memory_format_of(t) for t in inputs]

    @staticmethod
    def backward(ctx, grad):
        return tuple(as_memory_format(g, f) for g, f in zip(grad.split(ctx.sizes, dim=1), ctx.formats))

    @staticmethod
    def jvp(ctx, *tangents):  # linear: the tangents concatenated (forward-mode AD: torch.func.jvp, hessian)
        return torch.cat(tangents, dim=1)


def cat_channels(tensors: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``torch.cat(tensors, dim=1)`` of 4-d maps.  Under autograd with channels-last maps, each input's gradient
    comes back dense in its layout: a channel slice of a channels-last gradient (what ``cat``'s backward hands
    out) strides within every pixel's channel vector, and BatchNorm's backward runs about 5x slower on it (at
    8x64x28x28, 2 threads: 7.1 ms against 1.4 ms with the copy that makes it dense).  Use it where a BatchNorm
    output (no activation between) is concatenated; elsewhere, and for NCHW maps (whose channel slices are
    dense per image), it is ``torch.cat``."""
    if (records_grad(*tensors) and not torch.compiler.is_compiling()
            and any(is_channels_last(t) for t in tensors)):
        return _CatChannels.apply(*tensors)
    return torch.cat(tensors, dim=1)


def dense_strides(x: torch.Tensor) -> torch.Tensor:
    """``x`` when its strides are those of a contiguous or channels-last tensor of its shape, else a copy in the
    nearer of the two.  For layers that take a block's input as it comes: CPU BatchNorm's backward (torch 2.13) is
    wrong by O(1) for other strides, e.g. a size-1 dimension with an unusual stride (which ``is_contiguous`` accepts,
    so ``.contiguous()`` does not copy) or an HWC image permuted and batched (``hwc.permute(2, 0, 1)[None]``), while
    its forward is right.  Not under ``torch.compile``/tracing (the check would guard on strides)."""
    if x.dim() != 4 or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return x
    _, c, h, w = x.shape
    if x.stride() in ((c * h * w, h * w, w, 1), (h * w * c, 1, w * c, c)):
        return x
    return x.clone(memory_format=torch.channels_last if is_channels_last(x) else torch.contiguous_format)
