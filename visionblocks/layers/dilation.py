"""Dilating a built block in place: DeepLab's atrous conversion (Chen et al., Rethinking Atrous Convolution for
Semantic Image Segmentation, arXiv 1706.05587) for backbones run at ``output_stride`` 8 or 16 whose blocks take no
``dilation`` argument."""
from __future__ import annotations

import torch.nn as nn

from .conv_geometry import same_padding
from .helpers import to_2tuple

__all__ = ["dilate_convs", "stride_or_dilate"]


def dilate_convs(module: nn.Module, dilation: int) -> nn.Module:
    """Give every stride-1 ``nn.Conv2d`` with an odd ``k x k`` kernel (k > 1) inside ``module`` the dilation
    ``dilation`` and the "same" padding ``dilation (k - 1) / 2``, in place; returns ``module``.

    The weights are unchanged (the parameter count too) and each convolution keeps its output size: a block built
    at stride 1 then sees ``dilation`` times the context, as the strided block it replaces would have.  1x1
    convolutions are left alone.  ``ValueError`` for a strided convolution (build the block at stride 1 first) or
    a convolution whose padding is not "same".
    """
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"dilation must be an int >= 1, got {dilation!r}")
    for name, m in module.named_modules():
        if not isinstance(m, nn.Conv2d) or m.kernel_size == (1, 1):
            continue
        k = m.kernel_size
        if k[0] != k[1] or k[0] % 2 == 0 or m.stride != (1, 1) or m.padding_mode != "zeros" \
                or m.padding != to_2tuple(same_padding(k[0], m.dilation[0])) or m.dilation[0] != m.dilation[1]:
            raise ValueError(f"dilate_convs: {name or type(m).__name__} is not a stride-1 'same'-padded odd square "
                             f"convolution ({m})")
        m.dilation = to_2tuple(dilation)
        m.padding = to_2tuple(same_padding(k[0], dilation))
    return module


def stride_or_dilate(net_stride: int, stride: int, dilation: int, output_stride: int) -> tuple[int, int, int]:
    """The next stage of a backbone run at ``output_stride`` (DeepLab): ``(stride, dilation, net_stride)`` for
    a stage asking for ``stride`` after the network's ``net_stride`` so far, at ``dilation`` so far.  Past
    ``output_stride`` the stage keeps the resolution (stride 1) and multiplies the dilation instead."""
    if net_stride * stride > output_stride:
        return 1, dilation * stride, net_stride
    return stride, dilation, net_stride * stride
