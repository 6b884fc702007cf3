"""RepVGG block (Ding et al., RepVGG: Making VGG-style ConvNets Great Again, CVPR 2021, arXiv 2101.03697).

Training form: ``y = act(se(BN_k(conv_kxk(x)) + BN_1(conv_1x1(x)) + BN_id(x)))``, the identity branch only when
``in_channels == out_channels`` and ``stride == 1``; the 1x1 branch has the same stride and groups and no
padding, so its taps sit on the kxk kernel's centre.  Inference form (``reparameterize()`` or ``deploy=True``):
``y = act(se(conv_kxk'(x)))`` with ``W' = fuse(W_k, BN_k) + pad(fuse(W_1, BN_1)) + fuse(I, BN_id)`` and the
matching biases (paper Sec. 3.3).  The paper uses k = 3 and ReLU; any odd k works.  The optional SE
(RepVGG's ``use_se``, from the authors' code: after the branch sum, before the ReLU, C -> C/16 -> C with
biases) is ``attn_layer="se"``, the library's ``se`` block, which has exactly that structure; the authors pool with a
``W x W`` window (square inputs), ours pools globally, the same on square inputs.
"""
from __future__ import annotations

import torch.nn as nn

from visionblocks.layers import LayerType, deprecated_flag
from visionblocks.layers.validate import validated
from visionblocks.registry import register_block

from ._rep_conv import RepConvBase, conv_bn, conv_example

__all__ = ["RepVGGBlock"]


@register_block("repvgg_block", family="reparam", layout="conv",
                paper="Ding et al., RepVGG: Making VGG-style ConvNets Great Again, CVPR 2021",
                url="https://arxiv.org/abs/2101.03697",
                example=conv_example())
@validated()
class RepVGGBlock(RepConvBase):
    """kxk conv-BN + 1x1 conv-BN (+ identity BN) summed, then ReLU; folds to one kxk convolution.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: odd k of the main branch (paper: 3).
        stride: stride of every branch (the identity branch exists only at stride 1 with equal channels).
        groups: groups of the kxk and 1x1 convolutions (RepVGG-g2/g4 use 2 or 4); must divide both channel counts.
        attn_layer: attention after the sum, before the activation: a registered ``nchw`` block name, a class
            taking ``channels``, or None (RepVGG's optional SE: ``"se"``, C -> C/16 -> C).
        attn_kwargs: further keyword arguments of ``attn_layer``.
        act_layer: activation after the sum (paper: ReLU).
        deploy: build the folded inference form (one kxk convolution with bias) directly.
    """

    @deprecated_flag("use_se", "attn_layer", "se")  # RepVGG's flag
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, attn_layer: LayerType = None, attn_kwargs: dict | None = None,
                 act_layer: LayerType = "relu", deploy: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride, groups, attn_layer, attn_kwargs, act_layer,
                         deploy)

    def build_branches(self) -> dict[str, nn.Module]:
        cin, cout, k, s, g = self.in_channels, self.out_channels, self.kernel_size, self.stride, self.groups
        branches = {"conv_kxk": conv_bn(cin, cout, k, s, k // 2, g), "conv_1x1": conv_bn(cin, cout, 1, s, 0, g)}
        if cin == cout and s == 1:
            branches["identity"] = nn.BatchNorm2d(cout)
        return branches
