"""ResNet (He et al., CVPR 2016, arXiv 1512.03385) and ResNeXt (Xie et al., CVPR 2017, arXiv 1611.05431).

Every ResNet/ResNeXt takes ``attn=`` (a registered ``nchw`` attention name or a class taking ``channels``)
inserted where SENet inserts SE: on the residual branch after its last BatchNorm, before the addition.

The blocks are built to be reused: ``mid_layer`` replaces a bottleneck's 3x3 conv-BN-ReLU (SKNet, EPSANet,
CoTNet...), ``conv_layer`` a basic block's two 3x3 conv-BN units (DY-ResNet), ``stage_attn`` adds a module
after every stage but the last (BAM), and the stem and shortcut have the variants of later papers (deep stem,
average-pool shortcut).

Downsampling: He et al.'s ResNet puts a bottleneck's stride on its first 1x1 convolution (``stride_3x3=False``,
3.8 GFLOPs for ResNet-50, the baseline of SENet/CBAM/ECA); ResNeXt and "ResNet v1.5" put it on the 3x3
(``stride_3x3=True``, 4.1 GFLOPs).  Parameter counts are the same.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn as nn

from visionblocks.layers import ConvNormAct, DropPath, create_act
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase, resolve_attn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "make_shortcut"]

_PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
_URL = "https://arxiv.org/abs/1512.03385"


def make_shortcut(in_channels: int, out_channels: int, stride: int, avg_down: bool = False) -> nn.Module:
    """Identity when shapes agree, else 1x1 conv + BN (after a 2x2 average pool when ``avg_down``)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if avg_down and stride > 1:
        return nn.Sequential(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
                             ConvNormAct(in_channels, out_channels, 1, act_layer=None))
    return ConvNormAct(in_channels, out_channels, 1, stride, act_layer=None)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34).

    ``conv_layer(in_channels, out_channels, stride=..., act_layer=...)`` builds each 3x3 conv-norm-act unit
    (default: 3x3 conv-BN-act; DY-ResNet passes its dynamic-convolution unit).
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64,
                 attn_layer: Callable[[int], nn.Module] | None = None, act_layer="relu", drop_path: float = 0.0,
                 avg_down: bool = False, conv_layer: Callable[..., nn.Module] | None = None, **_):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(f"{type(self).__name__} supports only groups=1 and base_width=64")
        out = planes * self.expansion
        conv_layer = conv_layer or partial(ConvNormAct, kernel_size=3)
        self.conv1 = conv_layer(in_channels, planes, stride=stride, act_layer=act_layer)
        self.conv2 = conv_layer(planes, out, stride=1, act_layer=None)
        self.attn = attn_layer(out) if attn_layer else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.shortcut = make_shortcut(in_channels, out, stride, avg_down)
        self.act = create_act(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.conv2(self.conv1(x)))
        return self.act(self.drop_path(y) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand (x4).

    ``mid_layer(width, width, stride=..., groups=...)`` builds the middle unit (default: 3x3 conv-BN-act).
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64,
                 attn_layer: Callable[[int], nn.Module] | None = None, act_layer="relu", drop_path: float = 0.0,
                 avg_down: bool = False, stride_3x3: bool = True, mid_layer: Callable[..., nn.Module] | None = None):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out = planes * self.expansion
        s1, s2 = (1, stride) if stride_3x3 else (stride, 1)
        self.conv1 = ConvNormAct(in_channels, width, 1, s1, act_layer=act_layer)
        if mid_layer is None:
            self.conv2 = ConvNormAct(width, width, 3, s2, groups=groups, act_layer=act_layer)
        else:
            self.conv2 = mid_layer(width, width, stride=s2, groups=groups)
        self.conv3 = ConvNormAct(width, out, 1, act_layer=None)
        self.attn = attn_layer(out) if attn_layer else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.shortcut = make_shortcut(in_channels, out, stride, avg_down)
        self.act = create_act(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.conv3(self.conv2(self.conv1(x))))
        return self.act(self.drop_path(y) + self.shortcut(x))


class ResNet(ModelBase):
    """A ResNet/ResNeXt of ``block`` with ``layers`` blocks per stage.

    Args:
        block: ``BasicBlock``, ``Bottleneck`` or a compatible class.
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)``.
        num_classes, in_chans: classifier size (0 for none) and input channels.
        groups, width_per_group: ResNeXt cardinality and bottleneck width (32 and 4 for 32x4d).
        attn, attn_kwargs: attention inserted in every block before the addition (SENet position).
        stage_attn, stage_attn_kwargs: attention inserted after every stage but the last (BAM position).
        stem_type: ``""`` (7x7 conv) or ``"deep"`` (three 3x3 convs, ResNet-C / ResNeSt).
        stem_width: output channels of the stem (64).
        avg_down: average-pool shortcut (ResNet-D).
        stride_3x3: bottleneck stride on the 3x3 (True) or on the first 1x1 (False, He et al.).
        block_kwargs: passed to every block (e.g. ``mid_layer``, ``conv_layer``).
        drop_rate, drop_path_rate: dropout before the classifier, stochastic depth (linear ramp).
    """

    def __init__(self, block: type[nn.Module], layers: tuple[int, ...], num_classes: int = 1000, in_chans: int = 3,
                 groups: int = 1, width_per_group: int = 64, attn=None, attn_kwargs: dict | None = None,
                 stage_attn=None, stage_attn_kwargs: dict | None = None, stem_type: str = "", stem_width: int = 64,
                 avg_down: bool = False, stride_3x3: bool = True, block_kwargs: dict | None = None,
                 act_layer="relu", drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 channels: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        self.in_chans = in_chans
        if stem_type == "deep":
            self.stem = nn.Sequential(
                ConvNormAct(in_chans, stem_width // 2, 3, 2, act_layer=act_layer),
                ConvNormAct(stem_width // 2, stem_width // 2, 3, act_layer=act_layer),
                ConvNormAct(stem_width // 2, stem_width, 3, act_layer=act_layer),
                nn.MaxPool2d(3, 2, 1))
        elif stem_type == "":
            self.stem = nn.Sequential(ConvNormAct(in_chans, stem_width, 7, 2, act_layer=act_layer), nn.MaxPool2d(3, 2, 1))
        else:
            raise ValueError(f"stem_type must be '' or 'deep', got {stem_type!r}")
        attn_layer = resolve_attn(attn, attn_kwargs)
        stage_attn_layer = resolve_attn(stage_attn, stage_attn_kwargs)
        extra = dict(block_kwargs or {})
        if block is Bottleneck or issubclass(block, Bottleneck):
            extra.setdefault("stride_3x3", stride_3x3)
        total = sum(layers)
        dpr = [drop_path_rate * i / max(1, total - 1) for i in range(total)]
        in_ch, idx, stages = stem_width, 0, []
        for s, (n, planes) in enumerate(zip(layers, channels)):
            blocks = []
            for i in range(n):
                stride = 2 if (i == 0 and s > 0) else 1
                blocks.append(block(in_ch, planes, stride=stride, groups=groups, base_width=width_per_group,
                                    attn_layer=attn_layer, act_layer=act_layer, drop_path=dpr[idx],
                                    avg_down=avg_down, **extra))
                in_ch = planes * block.expansion
                idx += 1
            if stage_attn_layer is not None and s < len(layers) - 1:
                blocks.append(stage_attn_layer(in_ch))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = in_ch
        self.head = ClassifierHead(in_ch, num_classes, drop_rate)
        self.init_weights()

    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.stages(self.stem(x))


def _reg(name: str, params: float, macs: float, paper: str = _PAPER, url: str = _URL, note: str = "",
         macs_rel_tol: float = 0.01):
    return register_model(name, paper=paper, url=url, paper_params=params, paper_macs=macs, paper_note=note,
                          test_input_size=(64, 64), family="resnet", macs_rel_tol=macs_rel_tol)


@_reg("resnet18", 11.69, 1.8)
def resnet18(**kwargs) -> ResNet:
    """ResNet-18: 11.69 M params, 1.8 GFLOPs (multiply-adds) at 224x224 (He et al. Table 1)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


@_reg("resnet34", 21.80, 3.6, note="He et al. print 3.6 for 3.66 G multiply-adds (torchvision's ResNet-34 also "
     "counts 3.66 G); the table's figures are truncated to two digits.", macs_rel_tol=0.02)
def resnet34(**kwargs) -> ResNet:
    """ResNet-34: 21.80 M params, 3.6 GFLOPs at 224x224."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


@_reg("resnet50", 25.56, 3.8, note="He et al. print 3.8 for 3.86 G multiply-adds: SENet, CBAM and ECA-Net all "
     "report 3.86 G for this same network; the table's figures are truncated to two digits.", macs_rel_tol=0.02)
def resnet50(**kwargs) -> ResNet:
    """ResNet-50: 25.56 M params, 3.8 GFLOPs at 224x224 (stride on the first 1x1, as in the paper)."""
    kwargs.setdefault("stride_3x3", False)
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


@_reg("resnet101", 44.55, 7.6)
def resnet101(**kwargs) -> ResNet:
    """ResNet-101: 44.55 M params, 7.6 GFLOPs at 224x224."""
    kwargs.setdefault("stride_3x3", False)
    return ResNet(Bottleneck, (3, 4, 23, 3), **kwargs)


@_reg("resnet152", 60.19, 11.3)
def resnet152(**kwargs) -> ResNet:
    """ResNet-152: 60.19 M params, 11.3 GFLOPs at 224x224."""
    kwargs.setdefault("stride_3x3", False)
    return ResNet(Bottleneck, (3, 8, 36, 3), **kwargs)


_XPAPER = "Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017"
_XURL = "https://arxiv.org/abs/1611.05431"


@_reg("resnext50_32x4d", 25.0, 4.2, _XPAPER, _XURL)
def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 (32x4d): 25.0 M params, 4.2 GFLOPs at 224x224 (Xie et al. Table 1)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4, **kwargs)


@_reg("resnext101_32x8d", 88.79, 16.5, _XPAPER, _XURL)
def resnext101_32x8d(**kwargs) -> ResNet:
    """ResNeXt-101 (32x8d): 88.79 M params, 16.5 GFLOPs at 224x224 (Xie et al. Table 5 lists 32x8d at 16.5G)."""
    return ResNet(Bottleneck, (3, 4, 23, 3), groups=32, width_per_group=8, **kwargs)


_ATTN_MODELS = {
    "se_resnet50": ("se", 28.09, 3.87, "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018",
                    "https://arxiv.org/abs/1709.01507"),
    "cbam_resnet50": ("cbam", 28.09, 3.864, "Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018",
                      "https://arxiv.org/abs/1807.06521"),
    "eca_resnet50": ("eca", 25.56, 3.86, "Wang et al., ECA-Net, CVPR 2020", "https://arxiv.org/abs/1910.03151"),
}


def _attn_resnet50(attn: str, **kwargs) -> ResNet:
    kwargs.setdefault("attn", attn)
    return resnet50(**kwargs)


for _name, (_attn, _p, _m, _paper, _url) in _ATTN_MODELS.items():
    _fn = partial(_attn_resnet50, _attn)
    _fn.__doc__ = f"ResNet-50 with {_attn!r} in every bottleneck: {_p} M params, {_m} GFLOPs at 224x224 ({_paper})."
    _reg(_name, _p, _m, _paper, _url,
         note="ECA-Net's Table 2 lists 24.37 M for both ResNet-50 and ECA-Net50, which no ResNet-50 has "
              "(torchvision's and ours: 25.557 M; ECA adds 80 weights); we compare with 25.56 M."
         if _attn == "eca" else "")(_fn)
