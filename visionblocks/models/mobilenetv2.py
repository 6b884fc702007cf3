"""MobileNetV2 (Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018,
arXiv 1801.04381) and its coordinate-attention variant (Hou et al., Coordinate Attention for Efficient
Mobile Network Design, CVPR 2021, arXiv 2103.02907).

Built from the library's ``mbconv`` block (ReLU6, no SE): a 3x3 stride-2 stem of 32 channels, the
inverted-residual stages ``(t, c, n, s)`` of the paper's Table 2, a 1x1 convolution to 1280 channels,
global average pooling and a linear classifier.  Coordinate attention is inserted, as in the authors'
code, after the depthwise convolution of every block with an expansion (t = 6).

Features (``feature_info``, as timm): the last block at each resolution, reductions 2, 4, 8, 16, 32 (16, 24, 32,
96, 320 channels); the 1x1 head convolution follows the last feature (``forward_final``).  ``output_stride=16``
or ``8`` keeps the later blocks at that resolution and dilates their depthwise convolutions instead (DeepLab;
the first block of a dilated stage keeps the previous dilation), same parameters.
"""
from __future__ import annotations

import torch.nn as nn

from visionblocks.blocks.conv import MBConv
from visionblocks.features import FeaturePlan
from visionblocks.layers import ConvNormAct, LayerType, init_weights, make_divisible
from visionblocks.layers.dilation import dilate_convs, stride_or_dilate
from visionblocks.registry import register_model

from ._base import ClassifierHead, ConvHeadModel, resolve_attn

__all__ = ["MobileNetV2", "mobilenetv2", "coord_mobilenetv2"]

#: (expansion t, output channels c, repeats n, first stride s) -- Table 2 of Sandler et al.
MBV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1))


class MobileNetV2(ConvHeadModel):
    """MobileNetV2 of width ``width_mult``.

    Args:
        num_classes, in_chans: classifier size (0 for none) and input channels.
        width_mult: channel multiplier (1.0 in the paper's reference model).
        attn, attn_kwargs: attention on the expanded features of each expanding block (a registered
            ``nchw`` block name or a class taking ``channels``), e.g. ``"coord_attention"``.
        drop_rate: dropout before the classifier (the paper's code: 0.2).
        drop_path_rate: stochastic depth of the residual blocks (linear ramp).
        act_layer: activation (ReLU6).
        output_stride: 32 (native), 16 or 8 (dilated depthwise convolutions after that stride, DeepLab).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, attn: LayerType = None,
                 attn_kwargs: dict | None = None, drop_rate: float = 0.2, drop_path_rate: float = 0.0,
                 act_layer: LayerType = "relu6", output_stride: int = 32):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"MobileNetV2 offers output_stride 8, 16 or 32, got {output_stride!r}")
        self.in_chans = in_chans
        attn_layer = resolve_attn(attn, attn_kwargs)
        ch = make_divisible(32 * width_mult, 8)
        self.stem = ConvNormAct(in_chans, ch, 3, 2, act_layer=act_layer)
        total = sum(n for _, _, n, _ in MBV2_STAGES)
        blocks, idx, plan = [], 0, FeaturePlan(["stem"])
        net_stride, dilation = 2, 1
        for si, (t, c, n, s) in enumerate(MBV2_STAGES):
            out = make_divisible(c * width_mult, 8)
            first_dilation = dilation
            s, dilation, net_stride = stride_or_dilate(net_stride, s, dilation, output_stride)
            for i in range(n):
                block = MBConv(ch, out, 3, s if i == 0 else 1, expand_ratio=t,
                               attn_layer=attn_layer if t != 1 else None, act_layer=act_layer,
                               drop_path=drop_path_rate * idx / max(1, total - 1))
                d = first_dilation if i == 0 else dilation
                blocks.append(dilate_convs(block, d) if d > 1 else block)
                plan.add(f"blocks.{idx}")
                ch, idx = out, idx + 1
            if si == len(MBV2_STAGES) - 1 or MBV2_STAGES[si + 1][3] > 1:  # the last stage at this resolution
                plan.end_feature(ch, net_stride)
        self.blocks = nn.Sequential(*blocks)
        self.feature_info, self.feature_plan = plan.feature_info(), plan.feature_plan
        self.num_features = make_divisible(1280 * width_mult, 8) if width_mult > 1.0 else 1280
        self.conv_head = ConvNormAct(ch, self.num_features, 1, act_layer=act_layer)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        init_weights(self, conv="kaiming", linear="normal", std=0.01)



@register_model("mobilenetv2", paper="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, "
                "CVPR 2018", url="https://arxiv.org/abs/1801.04381", paper_params=3.50, paper_macs=0.300,
                test_input_size=(32, 32), output_strides=(8, 16, 32))
def mobilenetv2(**kwargs) -> MobileNetV2:
    """MobileNetV2 1.0: 3.50 M params, 300 M multiply-adds at 224x224 (paper Table 4: 300 M MAdds, "3.4 M"
    params; see ``paper_note``)."""
    return MobileNetV2(**kwargs)


@register_model("coord_mobilenetv2", paper="Hou et al., Coordinate Attention for Efficient Mobile Network "
                "Design, CVPR 2021", url="https://arxiv.org/abs/2103.02907", paper_params=3.95, paper_macs=0.310,
                test_input_size=(32, 32), output_strides=(8, 16, 32))
def coord_mobilenetv2(**kwargs) -> MobileNetV2:
    """MobileNetV2 1.0 with coordinate attention (r = 32) in every expanding block: 3.95 M params,
    310 M multiply-adds at 224x224 (Hou et al. Table 1)."""
    kwargs.setdefault("attn", "coord_attention")
    kwargs.setdefault("drop_rate", 0.1)  # the authors' classifier dropout
    return MobileNetV2(**kwargs)
