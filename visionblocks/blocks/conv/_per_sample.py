"""Per-sample kernels as one grouped convolution (the batch-as-groups trick of CondConv / dynamic
convolution).  Not a block (not registered)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def per_sample_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding,
                      dilation, groups: int) -> torch.Tensor:
    """``y[b] = conv2d(x[b], weight[b], bias[b])`` for every sample b, computed by one convolution whose
    groups are ``batch * groups``.  ``weight``: (B, O, C/groups, kh, kw); ``bias``: (B, O) or None.
    The output size comes from the convolution itself (not from the input size)."""
    b, c, h, w = x.shape
    o = weight.shape[1]
    y = F.conv2d(x.reshape(1, b * c, h, w), weight.reshape(b * o, *weight.shape[2:]),
                 None if bias is None else bias.reshape(b * o), stride, padding, dilation, b * groups)
    return y.reshape(b, o, y.shape[-2], y.shape[-1])
