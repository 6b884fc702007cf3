"""Resizing a learned grid (a position embedding, a frequency filter) to the size an input needs, by bicubic
interpolation, as the papers do when fine-tuning at another resolution (GFNet, Rao et al., NeurIPS 2021,
arXiv 2107.00645)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["resize_bicubic"]


def resize_bicubic(grid: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """``grid`` (N, C, h, w) resized to ``size`` by bicubic interpolation; ``grid`` itself when the size is already
    that.  With symbolic sizes (``torch.export``, a dynamic ``torch.compile``) it is always interpolated, which at
    the grid's own size is the identity (bicubic at scale 1 samples the grid points themselves, with or without
    ``align_corners``): the traced program then holds no branch on the size, a guard that refused the grid's own
    size when exported elsewhere."""
    if all(isinstance(s, int) for s in size) and tuple(size) == tuple(grid.shape[-2:]):
        return grid
    return F.interpolate(grid, size=tuple(size), mode="bicubic", align_corners=align_corners)
