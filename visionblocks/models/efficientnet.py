"""EfficientNet-B0 (Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks,
ICML 2019, arXiv 1905.11946) and CondConv-EfficientNet-B0 (Yang et al., CondConv: Conditionally
Parameterized Convolutions for Efficient Inference, NeurIPS 2019, arXiv 1904.04971).

EfficientNet-B0 (Table 1): a 3x3 stride-2 stem (32), seven stages of MBConv blocks
``(expand, kernel, stride, channels, repeats)`` = (1,3,1,16,1), (6,3,2,24,2), (6,5,2,40,2), (6,3,2,80,3),
(6,5,1,112,3), (6,5,2,192,4), (6,3,1,320,1), each with squeeze-and-excitation (0.25 of the block's input
channels) and swish, a 1x1 head convolution to 1280, global pooling, dropout 0.2 and the classifier.  BatchNorm
uses the reference code's eps 1e-3 / momentum 0.01; stochastic depth 0.2 (linear in the block index).

CondConv-EfficientNet-B0 (8 experts) follows the authors' TensorFlow builder (``efficientnet-condconv-b0-8e``):
the blocks of the last three stages (112, 192, 320 channels) become CondConv blocks, where one routing
function ``r = sigmoid(FC(GAP(x_in)))`` per block (8 experts) weights the expert kernels of the block's three
convolutions (expansion 1x1, depthwise, projection 1x1); everything else is EfficientNet-B0 (dropout 0.25).

Features (``feature_info``, as timm): the last block at each resolution, reductions 2, 4, 8, 16, 32 (16, 24, 40,
112, 320 channels for B0); the 1x1 head convolution follows the last feature (``forward_final``).
``output_stride=16`` or ``8`` keeps the later blocks at that resolution and dilates their depthwise convolutions
instead (DeepLab; the first block of a dilated stage keeps the previous dilation), same parameters.  Evaluation
as the reference TensorFlow code: bicubic resize, centre crop 0.875.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from visionblocks.blocks.conv import CondConv, MBConv
from visionblocks.features import FeaturePlan
from visionblocks.layers import (
    ConvNormAct, DropPath, LayerType, check_nchw, create_act, create_attn, create_norm, deprecated_se_ratio,
    init_weights, reduced_channels, se_kwargs, spatial_mean,
)
from visionblocks.layers.dilation import dilate_convs, stride_or_dilate
from visionblocks.registry import register_model

from ._base import ClassifierHead, ConvHeadModel

__all__ = ["EfficientNet", "CondConvMBConv", "efficientnet_b0", "condconv_efficientnet_b0_8e"]

# (expand_ratio, kernel, stride, out_channels, repeats) of EfficientNet-B0, Table 1
B0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
             (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
TF_BN = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)


class CondConvMBConv(nn.Module):
    """MBConv whose three convolutions are CondConvs sharing one sigmoid routing of the block input.

    ``r = sigmoid(FC(GAP(x)))``; ``y = BN(P_r * SE(act(BN(D_r * act(BN(E_r * x))))))`` (+ x when the shapes
    allow), where ``E_r``, ``D_r``, ``P_r`` are the expansion, depthwise and projection kernels mixed with r.
    ``attn_layer`` is the attention on the expanded features as in :class:`~visionblocks.blocks.conv.MBConv`
    (default ``"se"``: EfficientNet's SE, ``in_channels // 4`` wide, the block's activation); ``se_ratio=r``
    (deprecated) is ``attn_layer="se"`` ``max(1, int(in_channels * r))`` wide, or none for 0.  ``dilation``
    dilates the depthwise convolution (DeepLab output strides).
    """

    @deprecated_se_ratio(lambda a, r: max(1, int(a["in_channels"] * r)))
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 expand_ratio: float = 6.0, attn_layer: LayerType = "se", attn_kwargs: dict | None = None,
                 num_experts: int = 8, act_layer: LayerType = "silu", drop_path: float = 0.0,
                 norm_layer: LayerType = TF_BN, dilation: int = 1):
        super().__init__()
        if expand_ratio <= 1:
            raise ValueError(f"CondConvMBConv needs expand_ratio > 1, got {expand_ratio}")
        self.in_channels, self.out_channels = in_channels, out_channels
        hidden = int(round(in_channels * expand_ratio))
        self.routing = nn.Linear(in_channels, num_experts)
        cc = partial(CondConv, num_experts=num_experts, routing=False)
        self.conv_pw = cc(in_channels, hidden, 1)
        self.bn1, self.act1 = create_norm(norm_layer, hidden), create_act(act_layer, inplace=True)
        self.conv_dw = cc(hidden, hidden, kernel_size, stride, dilation=dilation, groups=hidden)
        self.bn2, self.act2 = create_norm(norm_layer, hidden), create_act(act_layer, inplace=True)
        self.attn = create_attn(attn_layer, hidden, **se_kwargs(attn_layer, attn_kwargs,
                                                                reduced_channels(in_channels, 4), act_layer=act_layer))
        self.conv_pwl = cc(hidden, out_channels, 1)
        self.bn3 = create_norm(norm_layer, out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path) if (drop_path > 0 and self.has_skip) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        r = torch.sigmoid(self.routing(spatial_mean(x)))
        y = self.act1(self.bn1(self.conv_pw(x, r)))
        y = self.act2(self.bn2(self.conv_dw(y, r)))
        y = self.bn3(self.conv_pwl(self.attn(y), r))
        return self.drop_path(y) + x if self.has_skip else y


class EfficientNet(ConvHeadModel):
    """EfficientNet built from MBConv stages.

    Args:
        stages: ``(expand, kernel, stride, channels, repeats)`` per stage.
        num_classes, in_chans: classifier size (0 for none) and input channels.
        stem_width, head_width: stem and head convolution widths (32, 1280).
        condconv_stages: indices of the stages built of :class:`CondConvMBConv` (none for EfficientNet).
        num_experts: CondConv experts.
        drop_rate, drop_path_rate: dropout before the classifier and stochastic depth.
        output_stride: 32 (native), 16 or 8 (dilated depthwise convolutions after that stride, DeepLab).
    """

    def __init__(self, stages=B0_STAGES, num_classes: int = 1000, in_chans: int = 3, stem_width: int = 32,
                 head_width: int = 1280, condconv_stages: tuple[int, ...] = (), num_experts: int = 8,
                 drop_rate: float = 0.2, drop_path_rate: float = 0.2, act_layer: LayerType = "silu",
                 norm_layer: LayerType = TF_BN, output_stride: int = 32):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"EfficientNet offers output_stride 8, 16 or 32, got {output_stride!r}")
        self.in_chans = in_chans
        self.stem = ConvNormAct(in_chans, stem_width, 3, 2, norm_layer=norm_layer, act_layer=act_layer)
        total = sum(s[4] for s in stages)
        blocks, in_ch, idx, plan = [], stem_width, 0, FeaturePlan(["stem"])
        net_stride, dilation = 2, 1
        for si, (e, k, s, c, n) in enumerate(stages):
            first_dilation = dilation
            s, dilation, net_stride = stride_or_dilate(net_stride, s, dilation, output_stride)
            for i in range(n):
                d = first_dilation if i == 0 else dilation
                kw = dict(kernel_size=k, stride=s if i == 0 else 1, expand_ratio=e, attn_layer="se",
                          act_layer=act_layer, drop_path=drop_path_rate * idx / total, norm_layer=norm_layer)
                if si in condconv_stages:
                    blocks.append(CondConvMBConv(in_ch, c, num_experts=num_experts, dilation=d, **kw))
                else:
                    block = MBConv(in_ch, c, **kw)
                    blocks.append(dilate_convs(block, d) if d > 1 else block)
                plan.add(f"blocks.{idx}")
                in_ch, idx = c, idx + 1
            if si == len(stages) - 1 or stages[si + 1][2] > 1:  # the last stage at this resolution
                plan.end_feature(in_ch, net_stride)
        self.blocks = nn.Sequential(*blocks)
        self.feature_info, self.feature_plan = plan.feature_info(), plan.feature_plan
        self.conv_head = ConvNormAct(in_ch, head_width, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.num_features = head_width
        self.head = ClassifierHead(head_width, num_classes, drop_rate)
        init_weights(self, conv="kaiming", conv_bias=False)



#: the reference TensorFlow evaluation: bicubic resize to size / 0.875 (CROP_PADDING 32 at 224), centre crop
_TF_EVAL = {"crop_pct": 0.875, "interpolation": "bicubic"}


@register_model("efficientnet_b0", paper="Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional "
                "Neural Networks, ICML 2019", url="https://arxiv.org/abs/1905.11946", paper_params=5.3,
                paper_macs=0.39, test_input_size=(32, 32), data_cfg=_TF_EVAL, output_strides=(8, 16, 32))
def efficientnet_b0(**kwargs) -> EfficientNet:
    """EfficientNet-B0: 5.3 M params, 0.39 B FLOPs (multiply-adds) at 224x224 (Tan & Le, Table 2)."""
    return EfficientNet(B0_STAGES, **kwargs)


@register_model("condconv_efficientnet_b0_8e", paper="Yang et al., CondConv: Conditionally Parameterized "
                "Convolutions for Efficient Inference, NeurIPS 2019", url="https://arxiv.org/abs/1904.04971",
                paper_params=24.0, paper_macs=0.413, test_input_size=(32, 32),
                macs_rel_tol=0.02, data_cfg=_TF_EVAL, output_strides=(8, 16, 32))
def condconv_efficientnet_b0_8e(**kwargs) -> EfficientNet:
    """CondConv-EfficientNet-B0 with 8 experts: 24.0 M params, 413 M multiply-adds at 224x224 (Yang et al.,
    Table 2; CondConv in the blocks of the last three stages, as in the authors' code)."""
    kwargs.setdefault("drop_rate", 0.25)
    return EfficientNet(B0_STAGES, condconv_stages=(4, 5, 6), num_experts=8, **kwargs)
