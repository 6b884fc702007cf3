"""Cutting a feature map into non-overlapping p_h x p_w patches and back, as MobileViT does (Mehta & Rastegari,
MobileViT, ICLR 2022, arXiv 2110.02178; MobileViTv2, arXiv 2206.02680): the pixels are regrouped by their
position p inside a patch (P = p_h p_w positions) and by their patch n (N = H W / P patches), so that a
transformer attends across the N patches for each p.  Maps whose size is not a multiple of the patch are
zero padded first (:func:`pad_to_patches`), with a map of the real pixels for masking."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .windows import window_count

__all__ = ["pad_to_patches", "unfold_patches", "fold_patches"]


def pad_to_patches(x: torch.Tensor, ph: int, pw: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Zero-pad (B, C, H, W) at the bottom/right to multiples of the patch size; also return the (1, 1, Hp, Wp)
    boolean map of real (unpadded) pixels, or ``None`` when nothing was padded.

    The map is ``None`` only for concrete sizes: a size that is symbolic (``torch.export`` or ``torch.compile``
    with a dynamic H or W) always gets the padding, by zero rows where the size divides, and the map, all True
    there, so that the traced program holds no branch on the size's divisibility and is right at every size (an
    ONNX translation drops the guard such a branch would need)."""
    H, W = x.shape[-2:]
    Hp, Wp = window_count(H, ph) * ph, window_count(W, pw) * pw  # (integer ceil: symbolic in a trace)
    if isinstance(H, int) and isinstance(W, int) and (Hp, Wp) == (H, W):
        return x, None
    pad = (0, Wp - W, 0, Hp - H)
    return F.pad(x, pad), F.pad(x.new_ones(1, 1, H, W, dtype=torch.bool), pad)


def unfold_patches(x: torch.Tensor, ph: int, pw: int, channels_last: bool = False) -> torch.Tensor:
    """(B, C, H, W), H and W multiples of the patch size -> (B, C, P, N): element [b, c, p, n] is pixel p of patch
    n.  With ``channels_last``: (B P, N, C), the P token sequences of each image (sequence ``b P + p``)."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // ph, ph, W // pw, pw)
    if channels_last:
        return x.permute(0, 3, 5, 2, 4, 1).reshape(B * ph * pw, (H // ph) * (W // pw), C)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(B, C, ph * pw, (H // ph) * (W // pw))


def fold_patches(x: torch.Tensor, H: int, W: int, ph: int, pw: int, channels_last: bool = False) -> torch.Tensor:
    """Inverse of :func:`unfold_patches` for an H x W map: (B, C, P, N), or (B P, N, C) with ``channels_last``,
    -> (B, C, H, W)."""
    if channels_last:
        C = x.shape[-1]
        B = x.shape[0] // (ph * pw)
        x = x.reshape(B, ph, pw, H // ph, W // pw, C).permute(0, 5, 3, 1, 4, 2)
    else:
        B, C = x.shape[:2]
        x = x.reshape(B, C, ph, pw, H // ph, W // pw).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(B, C, H, W)
