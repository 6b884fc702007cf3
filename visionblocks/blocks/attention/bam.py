"""Bottleneck Attention Module (Park et al., BAM: Bottleneck Attention Module, BMVC 2018, arXiv 1807.06514).

``F' = F + F * M(F)`` with ``M(F) = sigmoid(Mc(F) + Ms(F))`` (the (B, C, 1, 1) and (B, 1, H, W) maps broadcast
to (B, C, H, W)).  Channel branch ``Mc(F) = BN(MLP(avgpool(F)))`` with the MLP ``C -> C/r -> C`` (ReLU hidden layer,
biases as in Eq. 2).  Spatial branch
``Ms(F) = BN(f3_1x1(f2_3x3(f1_3x3(f0_1x1(F)))))``: a 1x1 reduction to C/r, two 3x3 convolutions with dilation
d (each BN-ReLU) and a 1x1 projection to one map.  Paper defaults r = 16, d = 4.  The padding of the dilated
convolutions equals the dilation, so H and W are kept at any size.

The authors' code (Jongchan/attention-module, ``MODELS/bam.py``, the network of their released ResNet50+BAM
checkpoint) computes another function, available as options (the defaults are the paper's):

* ``combine="mul"``: their code multiplies the two maps, ``M(F) = sigmoid(Mc(F) * Ms(F))``, where the paper's
  Eq. 1 adds them (``combine="add"``; addition is also the best combination of the paper's ablation).
* ``layout="authors"``: their branches' parameters.  The channel MLP is ``fc2(ReLU(BN(fc1(avgpool(F)))))``: the
  BatchNorm on the hidden layer, none on the output (the paper's Eq. 2 puts it on the output); the spatial
  branch has no final BatchNorm (Eq. 3 has one); and every convolution and linear layer carries a bias, those
  followed by a BatchNorm included (a bias before a BN only shifts its running mean, but it is a parameter of
  their checkpoints).  The BNs inside the spatial branch (after each convolution but the last) are in both
  layouts.  ``combine`` defaults to the layout's (``"add"`` for ``"paper"``, ``"mul"`` for ``"authors"``).

Their channel branch pools with ``avg_pool2d(x, H, stride=H)``: a global average only on square inputs (on an
H x W input with W != H it pools H x H windows and their MLP then sees ``C * (W // H)`` features, or fails).
Ours always pools globally, so ``layout="authors", combine="mul"`` equals their module on square inputs (their
ImageNet ResNet-50 only runs at 224 x 224); the ``authors.bam`` converter loads their checkpoint into
``bam_resnet50(stride_3x3=True, stage_attn_kwargs={"layout": "authors"})``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    ConvMlp, ConvNormAct, LayerType, check_nchw, check_positive_int, create_norm, reduced_channels,
    spatial_mean,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["BAM", "BAMChannelGate", "BAMSpatialGate"]

_LAYOUTS = ("paper", "authors")
_COMBINE = ("add", "mul")


class BAMChannelGate(nn.Module):
    """``Mc(F) = BN(MLP(avgpool(F)))``, shape (B, C, 1, 1); with ``hidden_norm`` (the authors' code)
    ``fc2(act(BN(fc1(avgpool(F)))))``, ``mlp`` then being a conv-BN-act unit (biased conv) and a 1x1 conv."""

    def __init__(self, channels: int, rd_channels: int, act_layer: LayerType = "relu",
                 norm_layer: LayerType = "batchnorm", hidden_norm: bool = False):
        super().__init__()
        if hidden_norm:
            self.mlp = nn.Sequential(
                ConvNormAct(channels, rd_channels, 1, bias=True, norm_layer=norm_layer, act_layer=act_layer),
                nn.Conv2d(rd_channels, channels, 1))
            self.bn = nn.Identity()
        else:
            self.mlp = ConvMlp(channels, rd_channels, act_layer=act_layer)
            self.bn = create_norm(norm_layer, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.mlp, ConvMlp):
            return self.bn(self.mlp.forward_vector(spatial_mean(x))[:, :, None, None])
        return self.mlp(spatial_mean(x)[:, :, None, None])


class BAMSpatialGate(nn.Module):
    """``Ms(F) = BN(conv1x1(conv3x3_d(conv3x3_d(conv1x1(F)))))``, shape (B, 1, H, W); with ``authors_layout``
    every convolution is biased and the final BN is left out."""

    def __init__(self, channels: int, rd_channels: int, dilation: int = 4, num_dilated: int = 2,
                 act_layer: LayerType = "relu", norm_layer: LayerType = "batchnorm", authors_layout: bool = False):
        super().__init__()
        bias = True if authors_layout else None  # None: ConvNormAct's rule, no bias before a norm
        layers = [ConvNormAct(channels, rd_channels, 1, bias=bias, norm_layer=norm_layer, act_layer=act_layer)]
        layers += [ConvNormAct(rd_channels, rd_channels, 3, padding=dilation, dilation=dilation, bias=bias,
                               norm_layer=norm_layer, act_layer=act_layer) for _ in range(num_dilated)]
        layers += [nn.Conv2d(rd_channels, 1, 1)]
        self.body = nn.Sequential(*layers)
        self.bn = nn.Identity() if authors_layout else create_norm(norm_layer, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.body(x))


@register_block("bam", family="attention", layout="nchw",
                paper="Park et al., BAM: Bottleneck Attention Module, BMVC 2018", url="https://arxiv.org/abs/1807.06514",
                example=Example(args=(64,), kwargs={}, input_shape=(2, 64, 14, 14)))
@validated(pooled_bn="the channel gate's BatchNorm on globally pooled features")
class BAM(nn.Module):
    """Channel and spatial attention computed in parallel and applied residually: ``F + F * sigmoid(Mc + Ms)``.

    Args:
        channels: input (= output) channels C.
        reduction: r, both branches are ``max(1, C // r)`` wide (paper: 16).
        dilation: d of the spatial branch's 3x3 convolutions (paper: 4); their padding equals it.
        num_dilated: number of dilated 3x3 convolutions (paper: 2).
        act_layer: activation (paper: ReLU).
        norm_layer: normalisation (paper: BatchNorm).
        rd_channels: explicit width of both branches (overrides ``reduction``; keyword only).
        layout: ``"paper"`` (Eqs. 2-3: BN on the channel MLP's output and at the end of the spatial branch, no
            bias before a BN) or ``"authors"`` (their code: BN on the MLP's hidden layer, no final spatial BN,
            every convolution biased; keyword only).  See the module docstring.
        combine: ``"add"`` (``sigmoid(Mc + Ms)``, the paper's Eq. 1) or ``"mul"`` (``sigmoid(Mc * Ms)``, the
            authors' code); ``None``: the layout's (add for "paper", mul for "authors"; keyword only).
    """

    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4, num_dilated: int = 2,
                 act_layer: LayerType = "relu", norm_layer: LayerType = "batchnorm", *, rd_channels: int | None = None,
                 layout: str = "paper", combine: str | None = None):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("dilation", dilation)
        if isinstance(num_dilated, bool) or not isinstance(num_dilated, int) or num_dilated < 0:
            raise ValueError(f"num_dilated must be a non-negative int, got {num_dilated!r}")
        if not isinstance(layout, str) or layout not in _LAYOUTS:
            raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
        if combine is None:
            combine = "mul" if layout == "authors" else "add"
        if not isinstance(combine, str) or combine not in _COMBINE:
            raise ValueError(f"combine must be one of {_COMBINE} or None, got {combine!r}")
        self.layout, self.combine = layout, combine
        authors = layout == "authors"
        rd = reduced_channels(channels, reduction, rd_channels)
        self.channel_gate = BAMChannelGate(channels, rd, act_layer, norm_layer, hidden_norm=authors)
        self.spatial_gate = BAMSpatialGate(channels, rd, dilation, num_dilated, act_layer, norm_layer,
                                           authors_layout=authors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        mc, ms = self.channel_gate(x), self.spatial_gate(x)
        return torch.addcmul(x, x, torch.sigmoid(mc + ms if self.combine == "add" else mc * ms))

    def extra_repr(self) -> str:
        return "" if (self.layout, self.combine) == ("paper", "add") else f"layout={self.layout}, combine={self.combine}"
