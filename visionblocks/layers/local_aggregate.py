"""Per-position kernels applied to a k x k neighbourhood (involution, CoT's local aggregation)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["local_aggregate"]


def local_aggregate(x: torch.Tensor, weight: torch.Tensor, kernel_size: int, stride: int = 1,
                    channels_last: bool = False) -> torch.Tensor:
    """``out[..., p] = sum_j weight[..., j, p] * x[..., s * p + offset_j]`` over the k x k offsets j of a
    zero-padded ("same", padding k // 2) window at stride s.

    ``x``: (..., H, W), the values; ``weight``: (..., k * k, Ho, Wo), broadcastable against ``x`` without its
    last two dimensions (e.g. values (B, G, C/G, H, W) with one kernel per group (B, G, 1, k*k, Ho, Wo)), where
    Ho, Wo = ceil(H / s), ceil(W / s).  Returns (..., Ho, Wo).

    ``channels_last=True``: the same with the positions first, as a channels-last map's memory holds them:
    ``x`` (B, H, W, ...), ``weight`` (B, Ho, Wo, ..., k * k) (offset j's ``weight[..., j]`` broadcasts against
    ``x``'s (B, Ho, Wo, ...)); returns (B, Ho, Wo, ...).  The shifted windows are then runs of whole channel
    vectors (the inner loop over channels, not over a short row of W), and a channels-last map needs no
    transposing copy in or out.

    The k * k offsets are accumulated as fused multiply-adds on shifted views of the padded input (a loop over
    the kernel's offsets, not over positions): unlike unfold -> multiply -> sum, no (..., k * k, Ho, Wo) patch
    tensor -- k^2 times the input -- is materialised, forward or backward (involution at 8x256x28x28, k = 7:
    3-4x faster forward+backward on CPU).
    """
    k, s, p = kernel_size, stride, kernel_size // 2
    if channels_last:
        ho, wo = weight.shape[1:3]
        tail = x.ndim - 3                                               # the dims after (B, H, W)
        xp = F.pad(x, (0, 0) * tail + (p, p, p, p))
        taps = weight.unbind(-1)
    else:
        ho, wo = weight.shape[-2:]
        xp = F.pad(x, (p,) * 4)
        taps = weight.unbind(-3)
    out = None
    for j, wj in enumerate(taps):
        di, dj = divmod(j, k)
        rows, cols = slice(di, di + s * (ho - 1) + 1, s), slice(dj, dj + s * (wo - 1) + 1, s)
        xs = xp[:, rows, cols] if channels_last else xp[..., rows, cols]
        out = xs * wj if out is None else torch.addcmul(out, xs, wj)
    return out
