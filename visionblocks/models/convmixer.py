"""ConvMixer (Trockman & Kolter, Patches Are All You Need?, TMLR 2023, arXiv 2201.09792).

Patch embedding ``BN(act(Conv_{p x p, stride p}))`` to h channels, then d layers of::

    x = x + BN(act(DepthwiseConv_{k x k}(x)))      # spatial mixing, "same" padding (even k: extra right/bottom)
    x = BN(act(PointwiseConv(x)))                  # channel mixing

then global average pooling and a linear classifier.  Stochastic depth (``drop_path_rate``, linear ramp over the
layers) drops the residual depthwise branch.  ConvMixer-1536/20: k = 9, p = 7, GELU (51.6M params);
ConvMixer-768/32: k = 7, p = 7, ReLU (21.1M params) (paper, Table 1).  Fully convolutional: any input size.
Evaluated at 224 with crop ratio 0.96, bicubic (the authors' timm configuration).

Features (``feature_info``): isotropic, one per layer, all at the patch reduction ``p``; the first includes the
patch embedding.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.features import FeatureInfo
from visionblocks.layers import DropPath, LayerType, create_act
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase

__all__ = ["ConvMixer", "ConvMixerLayer", "convmixer_1536_20", "convmixer_768_32"]

_PAPER = "Trockman & Kolter, Patches Are All You Need?, TMLR 2023"
_URL = "https://arxiv.org/abs/2201.09792"


class ConvMixerLayer(nn.Module):
    """Residual depthwise conv -> act -> BN (the branch dropped by stochastic depth ``drop_path``), then pointwise
    conv -> act -> BN."""

    def __init__(self, dim: int, kernel_size: int, act_layer: LayerType = "gelu", drop_path: float = 0.0):
        super().__init__()
        # "same" padding; an even kernel pads one more on the right/bottom (PyTorch's rule, the authors' "same")
        padding = kernel_size // 2 if kernel_size % 2 else "same"
        self.dw = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=dim)
        self.act1 = create_act(act_layer)
        self.bn1 = nn.BatchNorm2d(dim)
        self.pw = nn.Conv2d(dim, dim, 1)
        self.act2 = create_act(act_layer)
        self.bn2 = nn.BatchNorm2d(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.bn1(self.act1(self.dw(x))))
        return self.bn2(self.act2(self.pw(x)))


class ConvMixer(ModelBase):
    """ConvMixer-h/d with kernel size k and patch size p.

    Args:
        dim, depth: width h and number of layers d.
        kernel_size, patch_size: depthwise kernel k and patch size p.
        act_layer: activation (GELU or ReLU).
        num_classes, in_chans: classifier size (0 for none) and input channels.
        drop_rate, drop_path_rate: dropout before the classifier, stochastic depth of the residual depthwise
            branches (linear ramp).
    """

    input_stem = ("stem",)  # the p x p stride-p patch embedding: inputs of at least p x p

    def __init__(self, dim: int, depth: int, kernel_size: int = 9, patch_size: int = 7, act_layer: LayerType = "gelu",
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dim, patch_size, patch_size), create_act(act_layer),
                                  nn.BatchNorm2d(dim))
        dpr = [drop_path_rate * i / max(1, depth - 1) for i in range(depth)]
        self.blocks = nn.Sequential(*[ConvMixerLayer(dim, kernel_size, act_layer, dpr[i]) for i in range(depth)])
        self.head = ClassifierHead(dim, num_classes, drop_rate)
        self.num_features = dim
        self.feature_info = FeatureInfo([dict(num_chs=dim, reduction=patch_size, module=f"blocks.{i}")
                                         for i in range(depth)])
        self.feature_plan = [["stem", "blocks.0"]] + [[f"blocks.{i}"] for i in range(1, depth)]


_DATA = {"crop_pct": 0.96, "interpolation": "bicubic"}  # the authors' timm config (locuslab/convmixer)


@register_model("convmixer_1536_20", paper=_PAPER, url=_URL, paper_params=51.6, paper_macs=None,
                test_input_size=(56, 56), data_cfg=_DATA)
def convmixer_1536_20(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ConvMixer:
    """ConvMixer-1536/20 (k = 9, p = 7, GELU): 51.6M params (paper Table 1), 51.1 GMACs at 224 (our count)."""
    return ConvMixer(1536, 20, 9, 7, "gelu", num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("convmixer_768_32", paper=_PAPER, url=_URL, paper_params=21.1, paper_macs=None,
                test_input_size=(56, 56), data_cfg=_DATA)
def convmixer_768_32(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ConvMixer:
    """ConvMixer-768/32 (k = 7, p = 7, ReLU): 21.1M params (paper Table 1), 20.7 GMACs at 224 (our count)."""
    return ConvMixer(768, 32, 7, 7, "relu", num_classes=num_classes, in_chans=in_chans, **kwargs)
