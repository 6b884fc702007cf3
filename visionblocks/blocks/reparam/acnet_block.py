"""Asymmetric Convolution Block (Ding et al., ACNet: Strengthening the Kernel Skeletons for Powerful CNN via
Asymmetric Convolution Blocks, ICCV 2019, arXiv 1908.03930).

Training form: ``y = act(se(BN_s(conv_kxk(x)) + BN_v(conv_kx1(x)) + BN_h(conv_1xk(x))))``, the three
convolutions sharing stride and groups, padded (k//2, k//2), (k//2, 0) and (0, k//2) so that their sliding
windows are aligned on the square kernel's centre (paper Sec. 3.3, "BN fusion" and "branch fusion").
Inference form (``reparameterize()`` or ``deploy=True``): one kxk convolution whose kernel is the sum of the
BN-fused kernels, the asymmetric ones added onto the square kernel's middle column and row ("skeleton").
The ACB replaces a conv-BN unit, so it has no activation by default (paper: k = 3); ``act_layer`` and
an attention after the sum (``attn_layer``, e.g. RepVGG's SE) are available for uniformity with the other blocks.
"""
from __future__ import annotations

import torch.nn as nn

from visionblocks.layers import LayerType, deprecated_flag
from visionblocks.layers.validate import validated
from visionblocks.registry import register_block

from ._rep_conv import RepConvBase, conv_bn, conv_example

__all__ = ["ACBlock"]


@register_block("acnet_block", family="reparam", layout="conv",
                paper="Ding et al., ACNet: Strengthening the Kernel Skeletons for Powerful CNN via Asymmetric "
                      "Convolution Blocks, ICCV 2019",
                url="https://arxiv.org/abs/1908.03930",
                example=conv_example(32, 48))
@validated()
class ACBlock(RepConvBase):
    """kxk, kx1 and 1xk conv-BN branches summed; folds to one kxk convolution.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: odd k (paper: 3).
        stride: stride of every branch.
        groups: groups of every convolution; must divide both channel counts.
        attn_layer: attention after the sum, before the activation: a registered ``nchw`` block name, a class
            taking ``channels``, or None (RepVGG's optional SE: ``"se"``, C -> C/16 -> C).
        attn_kwargs: further keyword arguments of ``attn_layer``.
        act_layer: activation after the sum (paper: none, the ACB replaces conv-BN).
        deploy: build the folded inference form (one kxk convolution with bias) directly.
    """

    @deprecated_flag("use_se", "attn_layer", "se")  # RepVGG's flag
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, attn_layer: LayerType = None, attn_kwargs: dict | None = None,
                 act_layer: LayerType = None, deploy: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride, groups, attn_layer, attn_kwargs, act_layer,
                         deploy)

    def build_branches(self) -> dict[str, nn.Module]:
        cin, cout, k, s, g = self.in_channels, self.out_channels, self.kernel_size, self.stride, self.groups
        p = k // 2
        return {"square": conv_bn(cin, cout, k, s, p, g),
                "ver": conv_bn(cin, cout, (k, 1), s, (p, 0), g),
                "hor": conv_bn(cin, cout, (1, k), s, (0, p), g)}
