"""Deformable convolution v1 (Dai et al., Deformable Convolutional Networks, ICCV 2017, arXiv 1703.06211),
in pure PyTorch with the semantics of ``torchvision.ops.deform_conv2d``.

``y(p0) = sum_k w_k x(p0 + p_k + dp_k)``: every kernel tap k of output position p0 samples the input at its
regular grid position ``p_k`` plus a learned fractional offset ``dp_k`` (bilinear interpolation), the
offsets being predicted from the input by a side convolution (same kernel, stride, padding and dilation)
whose weights and bias are zero-initialised, so training starts from the plain convolution.  Sampling
matches torchvision exactly: ``y = oy * s - p + i * d + dy``; a corner outside the image contributes 0
(so a point at or beyond -1 / H is 0).  The offset tensor is (B, 2 * offset_groups * kh * kw, Ho, Wo),
ordered per offset group, per tap (row-major), as (dy, dx); channel c uses offset group
``c // (C / offset_groups)``.  :func:`deform_conv2d` gathers the four corners with vectorised indexing
(no loops over positions; any H, W >= 1) and contracts with the kernel in one batched matmul.
"""
from __future__ import annotations

from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._deform import DeformConvBase, deform_conv2d

__all__ = ["DeformableConv", "deform_conv2d"]


@register_block("deformable_conv", family="conv", layout="conv",
                paper="Dai et al., Deformable Convolutional Networks, ICCV 2017", url="https://arxiv.org/abs/1703.06211",
                example=Example(args=(16, 32, 3, 2), input_shape=(2, 16, 14, 14)))
@validated()
class DeformableConv(DeformConvBase):
    """Deformable convolution (DCN v1) with its offset predictor ``conv_offset``.

    Accepts ``nn.Conv2d``'s arguments, so it serves as ``ConvNormAct(conv_layer=DeformableConv)``.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size, stride, padding (``None``: "same"), dilation, groups, bias: of the convolution.
        offset_groups: channel groups sharing one offset field (deformable groups; paper: 1).
    """
