"""ParNet (Goyal, Bochkovskiy, Deng & Koltun, Non-deep Networks, NeurIPS 2022, arXiv 2110.07641).

A depth-12 network of three parallel streams.  Downsampling blocks (``ParNetDownsample``) reduce the input
to 1/4, 1/8 and 1/16 resolution; each stream stacks RepVGG-SSE blocks (the library's ``repvgg_sse_block``
block) at one resolution; the streams are fused from the highest resolution down (a fusion block batch-
normalises both inputs, interleaves their channels and applies a 2-group downsampling block), and a last
downsampling block widens to the final channel count before average pooling and the classifier.

A downsampling block computes ``SiLU((BN(conv3x3_s2(x)) + BN(conv1x1(avgpool2x2(x)))) * 2 sigmoid(W GAP(x)))``
(``W`` a 1x1 convolution without bias), followed by a channel shuffle when it is grouped, as in the
authors' code (imankgoyal/NonDeepNetworks, ``RepVGGBlock`` with ``avg_pool=True, se_block=True``).  At odd
input sizes the 2x2 average pool sees the input zero-padded at the bottom/right (always dividing by 4), so that
it gives the size of the strided 3x3 branch and stays the 2x2 corner of its window (identical to the paper at
even sizes; the two branches still fold into one 3x3 convolution).

Features (``feature_info``): the first downsampling block (reduction 2), the outputs of stream 1 (4) and stream 2
(8), the fusion of the three streams (16) and the last downsampling block (32).  The network is not sequential:
the steps between these features are the model's methods :meth:`ParNet.run_stream1`, :meth:`ParNet.run_stream2`
and :meth:`ParNet.run_stream3`, which carry what the later streams need (the downsampled input, the fusion so
far) alongside the feature; the branches are the same as in ``forward`` (their order of evaluation differs, their
results do not).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from visionblocks.blocks.reparam import RepConv3x3, RepVGGSSEBlock
from visionblocks.features import FeatureInfo
from visionblocks.layers import LayerType, channel_shuffle, create_act, init_weights, spatial_mean
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase

__all__ = ["ParNet", "ParNetDownsample", "ParNetFusion"]

_PAPER = "Goyal et al., Non-deep Networks, NeurIPS 2022"
_URL = "https://arxiv.org/abs/2110.07641"


class ParNetDownsample(nn.Module):
    """ParNet's downsampling block (``stride=2``) or its stride-1 channel-changing form (fusion head):
    ``SiLU(RepConv3x3(x) * 2 sigmoid(W GAP(x)))``, channel-shuffled when grouped.

    Args:
        in_channels, out_channels: channels in and out (divisible by ``groups``).
        stride: 2 (downsampling) or 1.
        groups: groups of every convolution (2 in the fusion blocks); the output is channel-shuffled.
        act_layer: final activation (SiLU).
        deploy: build the inference form (convolution branches folded).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, groups: int = 1,
                 act_layer: LayerType = "silu", deploy: bool = False):
        super().__init__()
        self.groups = groups
        self.conv = RepConv3x3(in_channels, out_channels, stride, groups, deploy=deploy)
        self.se_fc = nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False)
        self.act = create_act(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = 2.0 * torch.sigmoid(self.se_fc(spatial_mean(x, keepdim=True)))
        y = self.act(self.conv(x) * gate)
        return channel_shuffle(y, self.groups) if self.groups > 1 else y


class ParNetFusion(nn.Module):
    """Fusion of two streams: BN each, interleave their channels, then a 2-group downsampling block."""

    def __init__(self, channels: int, out_channels: int, stride: int = 2, deploy: bool = False):
        super().__init__()
        self.bn_a = nn.BatchNorm2d(channels)
        self.bn_b = nn.BatchNorm2d(channels)
        self.block = ParNetDownsample(2 * channels, out_channels, stride, groups=2, deploy=deploy)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = torch.stack([self.bn_a(a), self.bn_b(b)], dim=2).flatten(1, 2)  # channels a0, b0, a1, b1, ...
        return self.block(x)


class ParNet(ModelBase):
    """ParNet with stream widths ``widths = (w1, w2, w3)`` and final width ``out_features``.

    Args:
        widths: channels of the three streams (ParNet-S 96/192/384, M 128/256/512, L 160/320/640).
        out_features: channels of the last downsampling block (1280, 2048, 2560).
        depths: RepVGG-SSE blocks per stream (4, 5, 5: the paper's depth-12 network).
        num_classes, in_chans: classifier size (0 for none) and input channels.
        drop_rate: dropout before the classifier.
        drop_path_rate: accepted for a uniform model API, applied to nothing (with a warning): ParNet has no
            residual branch to drop (its blocks sum their branches, the skip-squeeze-excitation among them, before
            the activation).
        deploy: build the inference form (every 3x3/1x1 convolution pair folded, as the paper counts it).

    Weights keep torch's default initialisation, as in the authors' code (imankgoyal/NonDeepNetworks has no
    init routine).
    """

    def __init__(self, widths: tuple[int, int, int] = (96, 192, 384), out_features: int = 1280,
                 depths: tuple[int, int, int] = (4, 5, 5), num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, deploy: bool = False, drop_path_rate: float = 0.0):
        super().__init__()
        if drop_path_rate:  # accepted for a uniform model API (timm pipelines pass it to every model)
            warnings.warn(f"ParNet has no residual branch to drop: drop_path_rate={drop_path_rate} applies to "
                          "nothing (its blocks sum their branches before the activation)", stacklevel=3)
        if len(widths) != 3 or len(depths) != 3:
            raise ValueError(f"ParNet has three streams: widths and depths need 3 entries, got {widths}, {depths}")
        self.in_chans = in_chans
        w1, w2, w3 = widths
        stem = min(64, w1)
        d = {"deploy": deploy}
        self.down1 = nn.Sequential(ParNetDownsample(in_chans, stem, **d), ParNetDownsample(stem, w1, **d))  # 1/4
        self.down2 = ParNetDownsample(w1, w2, **d)                                                          # 1/8
        self.down3 = ParNetDownsample(w2, w3, **d)                                                          # 1/16
        self.streams = nn.ModuleList(nn.Sequential(*[RepVGGSSEBlock(w, **d) for _ in range(n)])
                                     for w, n in zip(widths, depths))
        self.fuse12 = ParNetDownsample(w1, w2, **d)            # stream 1 at 1/4 -> 1/8
        self.fuse2 = ParNetFusion(w2, w3, **d)                 # (stream 2, fused) -> 1/16
        self.fuse3 = ParNetFusion(w3, w3, stride=1, **d)       # (stream 3, fused) at 1/16
        self.final = ParNetDownsample(w3, out_features, **d)   # -> 1/32
        self.num_features = out_features
        self.head = ClassifierHead(out_features, num_classes, drop_rate)
        self.feature_info = FeatureInfo([
            dict(num_chs=stem, reduction=2, module="down1.0"), dict(num_chs=w1, reduction=4, module="streams.0"),
            dict(num_chs=w2, reduction=8, module="streams.1"), dict(num_chs=w3, reduction=16, module="fuse3"),
            dict(num_chs=out_features, reduction=32, module="final")])
        self.feature_plan = [["down1.0"], ["run_stream1"], ["run_stream2"], ["run_stream3"], ["final"]]
        init_weights(self, conv=None, linear=None)  # torch's defaults: the authors' scheme

    # the steps between features (see the module docstring); tuples carry what later streams need
    def run_stream1(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """1/2 -> ``(x1, s1)``: the input of stream 1 at 1/4 and its output (the feature)."""
        x1 = self.down1[1](x)
        return x1, self.streams[0](x1)

    def run_stream2(self, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """``(x1, s1)`` -> ``(x2, s2, fuse12(s1))``: stream 2's input and output (the feature) at 1/8, and stream
        1's output brought to 1/8."""
        x1, s1 = state
        x2 = self.down2(x1)
        return x2, self.streams[1](x2), self.fuse12(s1)

    def run_stream3(self, state: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``(x2, s2, y)`` -> the fusion of the three streams at 1/16."""
        x2, s2, y = state
        s3 = self.streams[2](self.down3(x2))
        return self.fuse3(s3, self.fuse2(s2, y))

    def feature_to_nchw(self, index: int, x) -> torch.Tensor:
        return x[1] if isinstance(x, tuple) else x  # a stream's output, carried with its input

    def forward_final(self, x) -> torch.Tensor:
        return self.feature_to_nchw(-1, x)  # (a network pruned to stream 1 or 2 ends with the carried state)

    #: the modules each method step runs, removed with it by prune_intermediate_layers
    step_modules = {"run_stream1": ("down1.1", "streams.0"), "run_stream2": ("down2", "streams.1"),
                    "run_stream3": ("fuse12", "down3", "streams.2", "fuse2", "fuse3")}  # (fuse12 feeds stream 3)


def _reg(name: str, params: float, macs: float):
    return register_model(name, paper=_PAPER, url=_URL, paper_params=params, paper_macs=macs,
                          test_input_size=(32, 32), count_kwargs={"deploy": True})


#: the paper's figures (Goyal et al. Table 1): (params in M, GFLOPs = 2 x G multiply-adds), re-parameterized
PAPER_FIGURES = {"parnet_s": (19.2, 9.7), "parnet_m": (35.6, 17.2), "parnet_l": (54.9, 26.7)}


@_reg("parnet_s", 19.2, 4.85)
def parnet_s(**kwargs) -> ParNet:
    """ParNet-S: widths 64/96/192/384/1280; paper: 19.2 M params, 9.7 GFLOPs at 224x224 (folded form, FLOPs =
    2 x multiply-adds); training form: 20.98 M params, 5.37 G multiply-adds.  ``widths``/``out_features`` may be
    overridden: the authors' released ParNet-S has 92 stream-1 channels, ``parnet_s(widths=(92, 192, 384))``."""
    return ParNet(**{"widths": (96, 192, 384), "out_features": 1280, **kwargs})


@_reg("parnet_m", 35.6, 8.6)
def parnet_m(**kwargs) -> ParNet:
    """ParNet-M: widths 64/128/256/512/2048; paper: 35.6 M params, 17.2 GFLOPs at 224x224 (folded form, FLOPs =
    2 x multiply-adds); training form: 38.95 M params, 9.53 G multiply-adds."""
    return ParNet(**{"widths": (128, 256, 512), "out_features": 2048, **kwargs})


@_reg("parnet_l", 54.9, 13.35)
def parnet_l(**kwargs) -> ParNet:
    """ParNet-L: widths 64/160/320/640/2560; paper: 54.9 M params, 26.7 GFLOPs at 224x224 (folded form, FLOPs =
    2 x multiply-adds); training form: 60.18 M params, 14.80 G multiply-adds."""
    return ParNet(**{"widths": (160, 320, 640), "out_features": 2560, **kwargs})
