"""Modulated deformable convolution, DCN v2 (Zhu et al., Deformable ConvNets v2: More Deformable, Better
Results, CVPR 2019, arXiv 1811.11168), in pure PyTorch with ``torchvision.ops.deform_conv2d`` semantics.

``y(p0) = sum_k w_k m_k x(p0 + p_k + dp_k)``: DCN v1's learned offsets plus a modulation scalar
``m_k = sigmoid(.) in [0, 1]`` per tap, both predicted by one zero-initialised side convolution (so at
initialisation ``dp_k = 0`` and ``m_k = 0.5``, as in the paper).  Its first ``2 * og * kh * kw`` output
channels are the offsets (torchvision layout, see ``deformable_conv``), the last ``og * kh * kw`` the mask
logits.
"""
from __future__ import annotations

from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._deform import DeformConvBase

__all__ = ["ModulatedDeformableConv"]


@register_block("modulated_deformable_conv", family="conv", layout="conv",
                paper="Zhu et al., Deformable ConvNets v2: More Deformable, Better Results, CVPR 2019",
                url="https://arxiv.org/abs/1811.11168",
                example=Example(args=(16, 32, 3, 2), input_shape=(2, 16, 14, 14)))
@validated()
class ModulatedDeformableConv(DeformConvBase):
    """Modulated deformable convolution (DCN v2) with its offset-and-mask predictor ``conv_offset``.

    Accepts ``nn.Conv2d``'s arguments, so it serves as ``ConvNormAct(conv_layer=ModulatedDeformableConv)``.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size, stride, padding (``None``: "same"), dilation, groups, bias: of the convolution.
        offset_groups: channel groups sharing one offset field and mask (paper: 1).
    """

    modulated = True
