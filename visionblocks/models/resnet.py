"""ResNet (He et al., CVPR 2016, arXiv 1512.03385) and ResNeXt (Xie et al., CVPR 2017, arXiv 1611.05431).

Every ResNet variant of the library is a configuration of :class:`ResNet`, built through its hooks:

- ``mid_layer(in_channels, out_channels, stride=, groups=, act_layer=, stage=)`` builds a block's spatial unit:
  the 3x3 conv-norm-act of a bottleneck (SKNet, EPSANet, CoTNet, HaloNet, RedNet, ResNeSt, SCNet, CoResNet
  replace it) or each of a basic block's two (DY-ResNet, ACNet/DBB ResNet-18); ``stage`` is the 0-based stage
  index, ``act_layer`` the activation the unit ends with (``None`` for a basic block's second unit, whose
  activation follows the addition).  Default: :func:`conv_mid_layer`, a 3x3 conv-BN-act.
- ``stem_layer(in_chans, out_channels, act_layer=)`` builds the stem (default :func:`resnet_stem`; ``stem_type=
  "deep"`` is :func:`deep_stem`).
- ``attn`` goes in every block where SENet inserts SE (on the residual branch after its last BatchNorm, before
  the addition), ``stage_attn`` after every stage but the last (BAM).
- ``block_kwargs`` go to every block, ``last_block_kwargs`` also to the last block of every stage.
- ``zero_init_last`` starts every residual branch at zero (its last BatchNorm's weight), as RedNet does.

:func:`build_resnet` builds a variant's configuration with the user's keyword arguments on top (a user value
replaces the variant's; ``block_kwargs`` and ``last_block_kwargs`` merge).  The stem and the shortcut have the
variants of later papers (deep stem, average-pool shortcut).

Downsampling: He et al.'s ResNet puts a bottleneck's stride on its first 1x1 convolution (``stride_3x3=False``,
3.8 GFLOPs for ResNet-50, the baseline of SENet/CBAM/ECA); ResNeXt and "ResNet v1.5" put it on the 3x3
(``stride_3x3=True``, 4.1 GFLOPs).  Parameter counts are the same.
"""
from __future__ import annotations

import warnings
from functools import partial
from typing import Any, Callable

import torch
import torch.nn as nn

from visionblocks.features import FeatureInfo
from visionblocks.layers import (ConvNormAct, DropPath, LayerType, create_act, init_weights,
                                 stride_or_dilate)
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase, resolve_attn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "build_resnet", "conv_mid_layer", "deep_stem", "make_shortcut",
           "resnet_stem"]

_PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
_URL = "https://arxiv.org/abs/1512.03385"


def conv_mid_layer(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                   act_layer: LayerType = "relu", stage: int = 0, *, kernel_size: int = 3,
                   unit_layer: Callable[..., nn.Module] = ConvNormAct, **unit_kwargs) -> nn.Module:
    """The default middle-layer hook: ``unit_layer(in_channels, out_channels, kernel_size, stride, groups=...,
    act_layer=..., **unit_kwargs)``, a kxk conv-norm-act (the stage is not used).

    ``partial(conv_mid_layer, conv_layer=DynamicConv)`` puts another convolution in the unit (through
    :class:`ConvNormAct`); ``partial(conv_mid_layer, unit_layer=ACBlock)`` makes the whole unit another block.
    """
    return unit_layer(in_channels, out_channels, kernel_size, stride, groups=groups, act_layer=act_layer,
                      **unit_kwargs)


def resnet_stem(in_chans: int, out_channels: int = 64, act_layer: LayerType = "relu",
                unit_layer: Callable[..., nn.Module] = ConvNormAct) -> nn.Sequential:
    """He et al.'s stem: a 7x7 stride-2 conv-BN-act, then a 3x3 stride-2 max-pool (output stride 4).

    ``unit_layer(in_chans, out_channels, 7, 2, act_layer=...)`` builds the conv-BN-act (ACNet/DBB ResNet-18
    pass their re-parameterizable unit).
    """
    return nn.Sequential(unit_layer(in_chans, out_channels, 7, 2, act_layer=act_layer), nn.MaxPool2d(3, 2, 1))


def deep_stem(in_chans: int, out_channels: int = 64, act_layer: LayerType = "relu",
              mid_conv_layer: Callable[..., nn.Module] | None = None) -> nn.Sequential:
    """The deep stem (ResNet-C, ResNeSt): 3x3 conv-BN-acts of ``out/2`` (stride 2), ``out/2`` and ``out``
    channels, then a 3x3 stride-2 max-pool.  ``mid_conv_layer`` replaces the middle convolution (RedNet: an
    involution), called as :class:`ConvNormAct`'s ``conv_layer``."""
    mid = out_channels // 2
    return nn.Sequential(
        ConvNormAct(in_chans, mid, 3, 2, act_layer=act_layer),
        ConvNormAct(mid, mid, 3, act_layer=act_layer, conv_layer=mid_conv_layer),
        ConvNormAct(mid, out_channels, 3, act_layer=act_layer),
        nn.MaxPool2d(3, 2, 1))


_STEMS = {"": resnet_stem, "deep": deep_stem}


def make_shortcut(in_channels: int, out_channels: int, stride: int, avg_down: bool = False) -> nn.Module:
    """Identity when shapes agree, else 1x1 conv + BN (after a 2x2 average pool when ``avg_down``)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if avg_down and stride > 1:
        return nn.Sequential(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
                             ConvNormAct(in_channels, out_channels, 1, act_layer=None))
    return ConvNormAct(in_channels, out_channels, 1, stride, act_layer=None)


def _legacy_hook(hook: Callable[..., nn.Module], *names: str) -> Callable[..., nn.Module]:
    """A hook of the old signatures (``mid_layer(in, out, stride=, groups=)`` of a bottleneck, ``conv_layer(in,
    out, stride=, act_layer=)`` of a basic block) called as a middle-layer hook: only ``names`` reach it."""

    def mid_layer(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                  act_layer: LayerType = "relu", stage: int = 0) -> nn.Module:
        given = {"stride": stride, "groups": groups, "act_layer": act_layer}
        return hook(in_channels, out_channels, **{n: given[n] for n in names})

    return mid_layer


def _dilated(dilation: int) -> dict[str, int]:
    """The middle layer's ``dilation`` keyword, passed only when dilating (output_stride < 32), so that hooks
    without a dilation argument keep working at the native stride."""
    return {"dilation": dilation} if dilation > 1 else {}


def _warn_legacy(old: str) -> None:
    warnings.warn(f"{old} is deprecated: pass mid_layer= to ResNet, a hook called as mid_layer(in_channels, "
                  f"out_channels, stride=, groups=, act_layer=, stage=)", DeprecationWarning, stacklevel=3)


class BasicBlock(nn.Module):
    """Two 3x3 units (ResNet-18/34).

    ``mid_layer(in_channels, out_channels, stride=..., groups=1, act_layer=...)`` builds each unit (default:
    3x3 conv-BN-act; the second has ``act_layer=None``).  ``conv_layer`` is its deprecated name, a hook of
    ``(in_channels, out_channels, stride=, act_layer=)``.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64,
                 attn_layer: Callable[[int], nn.Module] | None = None, act_layer: LayerType = "relu",
                 drop_path: float = 0.0, avg_down: bool = False, mid_layer: Callable[..., nn.Module] | None = None,
                 conv_layer: Callable[..., nn.Module] | None = None, dilation: int = 1, first_dilation: int = 1):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(f"{type(self).__name__} supports only groups=1 and base_width=64")
        if conv_layer is not None:
            if mid_layer is not None:
                raise TypeError("BasicBlock: got both conv_layer (deprecated) and mid_layer; pass mid_layer")
            _warn_legacy("BasicBlock(conv_layer=...)")
            mid_layer = _legacy_hook(conv_layer, "stride", "act_layer")
        mid_layer = mid_layer or conv_mid_layer
        out = planes * self.expansion
        self.conv1 = mid_layer(in_channels, planes, stride=stride, groups=1, act_layer=act_layer,
                               **_dilated(first_dilation))
        self.conv2 = mid_layer(planes, out, stride=1, groups=1, act_layer=None, **_dilated(dilation))
        self.attn = attn_layer(out) if attn_layer else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.shortcut = make_shortcut(in_channels, out, stride, avg_down)
        self.act = create_act(act_layer, inplace=True)

    def zero_init_last(self) -> None:
        """Zero the weight of the residual branch's last norm: the block starts as its shortcut."""
        nn.init.zeros_(self.conv2.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.conv2(self.conv1(x)))
        return self.act(self.drop_path(y) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand (x4).

    ``mid_layer(width, width, stride=..., groups=..., act_layer=...)`` builds the middle unit (default: 3x3
    conv-BN-act).
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64,
                 attn_layer: Callable[[int], nn.Module] | None = None, act_layer: LayerType = "relu",
                 drop_path: float = 0.0, avg_down: bool = False, stride_3x3: bool = True,
                 mid_layer: Callable[..., nn.Module] | None = None, dilation: int = 1, first_dilation: int = 1):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out = planes * self.expansion
        s1, s2 = (1, stride) if stride_3x3 else (stride, 1)
        self.conv1 = ConvNormAct(in_channels, width, 1, s1, act_layer=act_layer)
        self.conv2 = (mid_layer or conv_mid_layer)(width, width, stride=s2, groups=groups, act_layer=act_layer,
                                                   **_dilated(first_dilation))
        self.conv3 = ConvNormAct(width, out, 1, act_layer=None)
        self.attn = attn_layer(out) if attn_layer else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.shortcut = make_shortcut(in_channels, out, stride, avg_down)
        self.act = create_act(act_layer, inplace=True)

    def zero_init_last(self) -> None:
        """Zero the weight of the residual branch's last norm: the block starts as its shortcut."""
        nn.init.zeros_(self.conv3.bn.weight)

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
        stem_type: ``""`` (7x7 conv, :func:`resnet_stem`) or ``"deep"`` (three 3x3 convs, :func:`deep_stem`).
        stem_layer: ``stem_layer(in_chans, stem_width, act_layer=...)`` builds the stem instead.
        stem_width: output channels of the stem (64).
        avg_down: average-pool shortcut (ResNet-D).
        stride_3x3: bottleneck stride on the 3x3 (True) or on the first 1x1 (False, He et al.).
        mid_layer: the middle-layer hook ``mid_layer(in_channels, out_channels, stride=, groups=, act_layer=,
            stage=)`` (see the module docstring); ``None`` keeps the block's 3x3 conv-BN-act.
        block_kwargs: passed to every block; last_block_kwargs: also to the last block of every stage.
        act_layer: the activation of the blocks and the stem.
        drop_rate, drop_path_rate: dropout before the classifier, stochastic depth (linear ramp).
        channels: ``planes`` of each stage.
        zero_init_last: initialise the last norm of every residual branch to zero.
        output_stride: 32 (native), 16 or 8: the later stages keep their resolution and dilate their 3x3
            convolutions instead (DeepLab), same parameters; the middle-layer hook then receives ``dilation=``.

    Features (``feature_info``): the stem's last convolution (reduction 2), then each stage (4, 8, 16, 32).
    """

    def __init__(self, block: type[nn.Module], layers: tuple[int, ...], num_classes: int = 1000, in_chans: int = 3,
                 groups: int = 1, width_per_group: int = 64, attn=None, attn_kwargs: dict | None = None,
                 stage_attn=None, stage_attn_kwargs: dict | None = None, stem_type: str = "",
                 stem_layer: Callable[..., nn.Module] | None = None, stem_width: int = 64, avg_down: bool = False,
                 stride_3x3: bool = True, mid_layer: Callable[..., nn.Module] | None = None,
                 block_kwargs: dict | None = None, last_block_kwargs: dict | None = None,
                 act_layer: LayerType = "relu", drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 channels: tuple[int, ...] = (64, 128, 256, 512), zero_init_last: bool = False,
                 output_stride: int = 32):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"ResNet offers output_stride 8, 16 or 32, got {output_stride!r}")
        self.in_chans = in_chans
        if stem_type not in _STEMS:
            raise ValueError(f"stem_type must be '' or 'deep', got {stem_type!r}")
        if stem_layer is not None and stem_type:
            raise ValueError(f"pass stem_type ({stem_type!r}) or stem_layer, not both")
        self.stem = (stem_layer or _STEMS[stem_type])(in_chans, stem_width, act_layer=act_layer)
        attn_layer = resolve_attn(attn, attn_kwargs)
        stage_attn_layer = resolve_attn(stage_attn, stage_attn_kwargs, name="stage_attn")
        block_kwargs = dict(block_kwargs or {})
        for old, names in (("mid_layer", ("stride", "groups")), ("conv_layer", ("stride", "act_layer"))):
            if old in block_kwargs:  # the hooks' names before ResNet took mid_layer itself
                if mid_layer is not None:
                    raise TypeError(f"got both block_kwargs[{old!r}] (deprecated) and mid_layer; pass mid_layer")
                _warn_legacy(f"block_kwargs={{{old!r}: ...}}")
                mid_layer = _legacy_hook(block_kwargs.pop(old), *names)
        if issubclass(block, Bottleneck):
            block_kwargs.setdefault("stride_3x3", stride_3x3)
        total = sum(layers)
        dpr = [drop_path_rate * i / max(1, total - 1) for i in range(total)]
        in_ch, idx, stages = stem_width, 0, []
        net_stride, dilation = 4, 1
        features = [dict(num_chs=stem_width, reduction=2, module=f"stem.{len(self.stem) - 2}")]
        for s, (n, planes) in enumerate(zip(layers, channels)):
            stage_kwargs = dict(block_kwargs)
            if mid_layer is not None:
                stage_kwargs["mid_layer"] = partial(mid_layer, stage=s)
            stride, first_dilation = (2 if s > 0 else 1), dilation
            stride, dilation, net_stride = stride_or_dilate(net_stride, stride, dilation, output_stride)
            blocks = []
            for i in range(n):
                kwargs = {**stage_kwargs, **(last_block_kwargs or {})} if i == n - 1 else stage_kwargs
                if dilation > 1:
                    kwargs = {**kwargs, "dilation": dilation, "first_dilation": first_dilation if i == 0 else dilation}
                blocks.append(block(in_ch, planes, stride=stride if i == 0 else 1, groups=groups,
                                    base_width=width_per_group, attn_layer=attn_layer, act_layer=act_layer,
                                    drop_path=dpr[idx], avg_down=avg_down, **kwargs))
                in_ch = planes * block.expansion
                idx += 1
            if stage_attn_layer is not None and s < len(layers) - 1:
                blocks.append(stage_attn_layer(in_ch))
            stages.append(nn.Sequential(*blocks))
            features.append(dict(num_chs=in_ch, reduction=net_stride, module=f"stages.{s}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = in_ch
        self.feature_info = FeatureInfo(features)
        stem_convs = [f"stem.{i}" for i in range(len(self.stem) - 1)]
        self.feature_plan = [stem_convs, [f"stem.{len(self.stem) - 1}", "stages.0"]] + \
            [[f"stages.{s}"] for s in range(1, len(stages))]
        self.head = ClassifierHead(in_ch, num_classes, drop_rate)
        self.init_weights(zero_init_last)

    def init_weights(self, zero_init_last: bool = False) -> None:
        """Kaiming (fan-out) convolution weights, biases as built; with ``zero_init_last`` every block's
        ``zero_init_last()``."""
        init_weights(self, conv="kaiming", conv_bias=False)
        if zero_init_last:
            for m in self.stages.modules():
                if callable(getattr(m, "zero_init_last", None)):
                    m.zero_init_last()


_MERGED_KWARGS = ("block_kwargs", "last_block_kwargs")


def build_resnet(block: type[nn.Module], layers: tuple[int, ...], user_kwargs: dict[str, Any], **config) -> ResNet:
    """``ResNet(block, layers, **config)`` with ``user_kwargs`` on top: a user value replaces the variant's,
    except ``block_kwargs`` and ``last_block_kwargs``, which merge (the user's entries win).  Every registered
    ResNet variant is built this way."""
    for key, value in user_kwargs.items():
        if key in _MERGED_KWARGS and config.get(key) and value:
            value = {**config[key], **value}
        config[key] = value
    return ResNet(block, layers, **config)


def _reg(name: str, params: float, macs: float, paper: str = _PAPER, url: str = _URL,
         macs_rel_tol: float = 0.01):
    return register_model(name, paper=paper, url=url, paper_params=params, paper_macs=macs,
                          test_input_size=(64, 64), macs_rel_tol=macs_rel_tol, output_strides=(8, 16, 32))


@_reg("resnet18", 11.69, 1.8)
def resnet18(**kwargs) -> ResNet:
    """ResNet-18: 11.69 M params, 1.8 GFLOPs (multiply-adds) at 224x224 (He et al. Table 1)."""
    return build_resnet(BasicBlock, (2, 2, 2, 2), kwargs)


@_reg("resnet34", 21.80, 3.6, macs_rel_tol=0.02)
def resnet34(**kwargs) -> ResNet:
    """ResNet-34: 21.80 M params, 3.6 GFLOPs at 224x224."""
    return build_resnet(BasicBlock, (3, 4, 6, 3), kwargs)


@_reg("resnet50", 25.56, 3.8, macs_rel_tol=0.02)
def resnet50(**kwargs) -> ResNet:
    """ResNet-50: 25.56 M params, 3.8 GFLOPs at 224x224 (stride on the first 1x1, as in the paper)."""
    return build_resnet(Bottleneck, (3, 4, 6, 3), kwargs, stride_3x3=False)


@_reg("resnet101", 44.55, 7.6)
def resnet101(**kwargs) -> ResNet:
    """ResNet-101: 44.55 M params, 7.6 GFLOPs at 224x224."""
    return build_resnet(Bottleneck, (3, 4, 23, 3), kwargs, stride_3x3=False)


@_reg("resnet152", 60.19, 11.3)
def resnet152(**kwargs) -> ResNet:
    """ResNet-152: 60.19 M params, 11.3 GFLOPs at 224x224."""
    return build_resnet(Bottleneck, (3, 8, 36, 3), kwargs, stride_3x3=False)


_XPAPER = "Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017"
_XURL = "https://arxiv.org/abs/1611.05431"


@_reg("resnext50_32x4d", 25.0, 4.2, _XPAPER, _XURL)
def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 (32x4d): 25.0 M params, 4.2 GFLOPs at 224x224 (Xie et al. Table 1)."""
    return build_resnet(Bottleneck, (3, 4, 6, 3), kwargs, groups=32, width_per_group=4)


@_reg("resnext101_32x8d", 88.79, 16.5, _XPAPER, _XURL)
def resnext101_32x8d(**kwargs) -> ResNet:
    """ResNeXt-101 (32x8d): 88.79 M params, 16.5 GFLOPs at 224x224 (Xie et al. Table 5 lists 32x8d at 16.5G)."""
    return build_resnet(Bottleneck, (3, 4, 23, 3), kwargs, groups=32, width_per_group=8)
