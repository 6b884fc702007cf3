"""Pooling: the global spatial mean with a cheap backward, strided (window = stride) average pooling, and the
maximum over one axis in the fastest form ATen offers for its layout."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .helpers import counts_arithmetic
from .memory_format import is_channels_last

__all__ = ["spatial_mean", "avg_pool_ceil", "max_over", "mean_over"]


def spatial_mean(x: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Mean over the last two (spatial) dimensions: the value of ``x.mean((-2, -1))``.

    Computed as a sum divided on the pooled result: the backward of ``sum`` is a broadcast *view* of the pooled
    gradient, while ``mean``'s backward divides the expanded gradient, materialising one more full-size tensor
    per call (a fresh allocation and a pass over memory; an SE-style gate trains about 25% faster on CPU at
    (8, 256, 28, 28)).  float16 keeps ``mean``, which accumulates in float32: a float16 sum over many positions
    can overflow.  Under ``torch.jit.trace`` (the TorchScript ONNX exporter, ``torch.onnx.export(dynamo=False)``,
    which ultralytics uses) also ``mean``: the trace would record the example's ``H * W`` as a constant divisor,
    wrong at every other size of a graph exported with dynamic axes.
    """
    if x.dtype is torch.float16 or torch.jit.is_tracing():
        return x.mean((-2, -1), keepdim=keepdim)
    return x.sum((-2, -1), keepdim=keepdim) / (x.shape[-2] * x.shape[-1])


def avg_pool_ceil(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Non-overlapping ``stride`` x ``stride`` average pooling in ceil mode: the value of
    ``F.avg_pool2d(x, stride, stride, ceil_mode=True)`` (a partial border window averages its valid elements).

    When H and W are multiples of the stride and ``x`` is contiguous (NCHW), the window is summed from its
    ``stride**2`` strided views: ATen's NCHW pooling kernel walks each window element by element (at 8x192x28x28,
    2 threads, stride 2: 2.5 ms against 0.5 ms for the four views, 0.1 ms for its channels-last kernel, which is
    used as it is).  Under ``torch.compile``/``torch.export`` the pooling is left to ``F.avg_pool2d``: the
    compiler writes its own kernel, and an exported program stays valid for sizes that are not multiples.
    """
    if stride == 1:
        return x
    H, W = x.shape[-2:]
    if torch.compiler.is_compiling() or H % stride or W % stride or not x.is_contiguous() or x.ndim != 4:
        return F.avg_pool2d(x, stride, stride, ceil_mode=True)
    y = x[..., ::stride, ::stride].clone()
    for i in range(stride):
        for j in range(stride):
            if i or j:
                y = y.add_(x[..., i::stride, j::stride])
    return y.mul_(1.0 / (stride * stride))


def _nhwc(x: torch.Tensor) -> torch.Tensor | None:
    """The (B, H, W, C) contiguous view of a 4-d tensor stored channels-last (and not also NCHW-contiguous), else
    None.  ATen reduces a channels-last map over H, W or C at 0.35-0.6 broadcast multiplies when asked on this
    view (its output then keeps C innermost), but at 3-6 when asked on the (B, C, H, W) view (at 8x256x28x28, one
    and two threads): the output is allocated NCHW and the reduction loses its vectorisation along C."""
    return x.permute(0, 2, 3, 1) if is_channels_last(x) else None


def _reduce_nhwc(xp: torch.Tensor, op, dim: int, keepdim: bool) -> torch.Tensor:
    """``op(x, dim)`` of a channels-last ``x`` given as its (B, H, W, C) view ``xp``: reduced on that view, returned
    in the (B, C, H, W) axis order (a channels-last-strided view of the small result)."""
    y = op(xp, (0, 3, 1, 2)[dim]).permute(0, 3, 1, 2)   # NCHW axis -> its position in (B, H, W, C)
    return y if keepdim else y.squeeze(dim)


def max_over(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """The maximum of ``x`` over ``dim``: the value of ``x.amax(dim, keepdim)``, in the fastest eager form.

    - With autograd recording through ``x``: ``x.max(dim).values``.  Its backward scatters the gradient to the
      arg-max, where ``amax``'s builds a tie-splitting mask: about 40% cheaper forward + backward at
      (8, 256, 28, 28) on CPU, for dims 1, 2 and 3.  Ties (probability 0 in float data) send the gradient to one
      of the tied elements instead of splitting it; the values are the same.  A channels-last map is reduced on
      its (B, H, W, C) view: the backward's full-size gradient is then allocated channels-last like the other
      gradients of the map (accumulating gradients of two layouts strides through one of them).
    - Without it, over H or W of a 4-d tensor (dims 2, 3: short rows or columns): a tree of elementwise maxima
      of two overlapping parts.  ATen's ``amax`` over an axis whose inner extent is short runs 4-13 broadcast
      multiplies of the whole tensor, the trees 1.4-1.6 (over H) and 2.3-2.8 (over W).  Over H each level takes
      the two halves (overlapping by one when the length is odd).  Over W each level keeps a power of two (the
      first and last 16 of 28, then 8, 4, 2, 1): a row of 16 or 8 fills whole vector registers, where ATen's
      elementwise loop over a row of 14 or 7 runs mostly scalar (AVX-512 machine, one thread, paired: 0.70-0.85
      of the halving tree finished by ``amax`` at 8x{1024x7x7, 512x14x14, 256x28x28, 64x56x56, 256x9x13}).
    - Without it, any axis of a channels-last 4-d tensor: ``amax`` on its (B, H, W, C) view (0.4-0.6 multiplies
      where ``amax`` on the (B, C, H, W) view costs 4-6 and the tree 1.3-2.3).
    - Otherwise (and under ``torch.compile``/``torch.export``, whose compiler fuses the reduction, and for which
      the tree's depth would fix the size): ``amax``.
    """
    if torch.compiler.is_compiling() or torch.jit.is_tracing():  # (the tree's steps depend on the size)
        return x.amax(dim, keepdim=keepdim)
    d = dim % x.ndim if x.ndim else dim
    xp = _nhwc(x)
    if x.requires_grad and torch.is_grad_enabled():
        if xp is not None and x.shape[d] > 0:  # (its backward's gradient is then laid out as x, as the others)
            return _reduce_nhwc(xp, lambda t, k: t.max(k, keepdim=True).values, d, keepdim)
        return x.max(dim, keepdim=keepdim).values
    if xp is not None and x.shape[d] > 0:
        return _reduce_nhwc(xp, lambda t, k: t.amax(k, keepdim=True), d, keepdim)
    if x.ndim != 4 or d < 2 or x.shape[d] == 0:
        return x.amax(dim, keepdim=keepdim)
    while x.shape[d] > 1:
        n = x.shape[d]
        part = (n + 1) // 2 if d == 2 else 1 << (n - 1).bit_length() - 1   # over W: a power of two >= n / 2
        x = torch.maximum(x.narrow(d, 0, part), x.narrow(d, n - part, part))
    return x if keepdim else x.squeeze(d)


def mean_over(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The mean of ``x`` over ``dim`` (the value of ``x.mean(dim)``), in the fastest eager form.

    Without autograd recording through ``x``, over H or W of a contiguous 4-d floating tensor (dims 2, 3): a
    matrix product with a constant ``1/n`` vector, which reads ``x`` once in a GEMV kernel (at 8x256x28x28 on one
    thread: over W 0.55-0.72 broadcast multiplies of the tensor, over H 0.49-0.59, against 0.84-1.04 and
    0.71-0.82 for ATen's sums over those short axes, and no division).  Over any axis of a channels-last 4-d
    floating tensor (with or without autograd): the sum on its (B, H, W, C) view (0.35-0.55 multiplies, against
    3.3 for the sum over H or W asked on the (B, C, H, W) view).  Otherwise -- and on the meta device and under
    dispatch modes, where a FLOP count is of the network's pooling, not of a product -- a sum divided on the small
    result: ``sum``'s backward is a broadcast view, where ``mean``'s materialises the expanded gradient (float16
    and integer tensors keep ``mean``: it accumulates float16 in float32, and rejects integers as torch does).
    Under ``torch.jit.trace`` (the TorchScript ONNX exporter): ``mean``, since a trace records sizes used in
    Python arithmetic as constants.
    """
    if torch.jit.is_tracing():
        return x.mean(dim)
    xp = _nhwc(x)
    if (xp is not None and x.is_floating_point() and x.dtype is not torch.float16 and x.shape[dim] > 0
            and not torch.compiler.is_compiling()):
        return _reduce_nhwc(xp, lambda t, k: t.sum(k, keepdim=True), dim % 4, False) / x.shape[dim]
    if (x.ndim != 4 or dim % 4 < 2 or x.numel() == 0 or x.dtype is torch.float16 or not x.is_floating_point()
            or not x.is_contiguous() or (x.requires_grad and torch.is_grad_enabled())
            or torch.compiler.is_compiling() or counts_arithmetic(x)):
        if x.dtype is torch.float16 or not x.is_floating_point():
            return x.mean(dim)
        return x.sum(dim) / (x.shape[dim] if x.ndim else 1)
    d = dim % 4
    B, C, H, W = x.shape
    if d == 3:
        return torch.mv(x.view(-1, W), x.new_full((W,), 1.0 / W)).view(B, C, H)
    return torch.matmul(x.new_full((1, 1, H), 1.0 / H), x.view(B * C, H, W)).view(B, C, W)
