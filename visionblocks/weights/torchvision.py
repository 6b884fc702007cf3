"""Converters from torchvision's layouts (torchvision 0.29): ResNet/ResNeXt, MobileNetV2, EfficientNet.

torchvision's ResNet keys (``conv1``, ``bn1``, ``layer1.0.conv1``..., ``downsample.0/1``, ``fc``) are also timm's
for every ResNet built by its ``ResNet`` class: the same converter reads timm's plain, deep-stem (``conv1.0/1/3/4/6``,
ResNet-C/D), average-pool-shortcut (``downsample.1/2``, ResNet-D) and attention (``se.*``: SE, ECA) ResNets.
Both codebases stride in the bottleneck's 3x3 ("ResNet v1.5"); our ``resnet50``/``101``/``152`` follow He et al.
(stride on the first 1x1), so a bottleneck checkpoint needs ``stride_3x3=True`` (named weights set it).
"""
from __future__ import annotations

import re

import torch

from visionblocks.models.efficientnet import EfficientNet
from visionblocks.models.mobilenetv2 import MobileNetV2
from visionblocks.models.resnet import ResNet

from ._common import check_stride_3x3, has_all, has_any
from .convert import Converter, register_converter, rename_keys
from .errors import ArchitectureMismatchError
from .load import register_added_modules

__all__ = ["RESNET", "MOBILENETV2", "EFFICIENTNET", "convert_resnet", "convert_mobilenetv2", "convert_efficientnet",
           "resnet_rules", "block_name", "check_bn_eps"]

_CNA = {"0": "conv", "1": "bn"}  # index inside a torchvision Conv2dNormActivation -> our ConvNormAct name


# --------------------------------------------------------------------------------------------------- ResNet
def _detect_resnet(keys) -> bool:
    return has_all(keys, "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.conv2.weight") and \
        ("conv1.weight" in keys or "conv1.0.weight" in keys)


def resnet_rules(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> list:
    """The renaming rules of torchvision's/timm's ResNet keys (stem, residual convs/BNs, shortcut, ``se``, ``fc``)
    into ours; they also serve timm's ResNet-class variants (ResNeSt, Res2Net, SK), which add their own rules for
    the block internals.  Refuses a stem or shortcut of another kind, naming the option."""
    own = model.state_dict()
    deep = "conv1.0.weight" in sd
    avg = has_any(sd, r"layer\d+\.\d+\.downsample\.2\.weight")
    if deep != ("stem.1.conv.weight" in own):
        raise ArchitectureMismatchError(
            f"the checkpoint's stem is {'three 3x3 convolutions' if deep else 'one 7x7 convolution'}, the model's is "
            f"not: build it with stem_type={'deep' if deep else ''!r}", options={"stem_type": "deep" if deep else ""})
    if avg != any(re.fullmatch(r"stages\.\d+\.\d+\.shortcut\.1\.conv\.weight", k) for k in own):
        raise ArchitectureMismatchError(
            f"the checkpoint's downsampling shortcuts {'average-pool before' if avg else 'stride'} their 1x1 "
            f"convolution, the model's do not: build it with avg_down={avg}", options={"avg_down": avg})

    def shortcut(m):  # downsample.0/1 (conv, bn), or .1/.2 after the average pool; ours nests them after a pool
        b, i, rest = block_name(m), int(m[3]) - avg, m[4]
        unit = f"{b}.shortcut.1" if f"{b}.shortcut.1.conv.weight" in own else f"{b}.shortcut"
        return f"{unit}.{'conv' if i == 0 else 'bn'}.{rest}"

    return [
        (r"conv1\.weight", "stem.0.conv.weight"),
        (r"bn1\.(.+)", r"stem.2.bn.\1" if deep else r"stem.0.bn.\1"),
        (r"conv1\.0\.weight", "stem.0.conv.weight"), (r"conv1\.1\.(.+)", r"stem.0.bn.\1"),
        (r"conv1\.3\.weight", "stem.1.conv.weight"), (r"conv1\.4\.(.+)", r"stem.1.bn.\1"),
        (r"conv1\.6\.weight", "stem.2.conv.weight"),
        (r"layer(\d+)\.(\d+)\.conv(\d)\.weight", lambda m: f"{block_name(m)}.conv{m[3]}.conv.weight"),
        (r"layer(\d+)\.(\d+)\.bn(\d)\.(.+)", lambda m: f"{block_name(m)}.conv{m[3]}.bn.{m[4]}"),
        (r"layer(\d+)\.(\d+)\.downsample\.(\d)\.(.+)", shortcut),
        (r"layer(\d+)\.(\d+)\.se\.(.+)", lambda m: f"{block_name(m)}.attn.{m[3]}"),
        (r"fc\.(.+)", r"head.fc.\1"),
    ]


def block_name(m: re.Match) -> str:
    """Our name of the block ``layer<i>.<j>`` (groups 1 and 2 of ``m``)."""
    return f"stages.{int(m[1]) - 1}.{m[2]}"


def convert_resnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """torchvision/timm ResNet keys -> ours (stem, stages, shortcut, attention, head)."""
    return rename_keys(sd, resnet_rules(sd, model))


def _check_resnet(model) -> None:
    check_stride_3x3(model, "torchvision's and timm's")


def _resnet_stage_attention(model: ResNet) -> list[str]:
    """ResNet's stage attention (``stage_attn=``, BAM): the modules that end a stage and are not of the class of
    its residual blocks."""
    out = []
    for s, stage in enumerate(model.stages):
        for i, m in enumerate(stage):
            if i > 0 and type(m) is not type(stage[0]):
                out.append(f"stages.{s}.{i}")
    return out


register_added_modules(ResNet, _resnet_stage_attention)

RESNET = register_converter(Converter(
    name="torchvision.resnet", source="torchvision (and timm's ResNet class: same keys)", model_types=(ResNet,),
    detect=_detect_resnet, convert=convert_resnet, check=_check_resnet,
    models={"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50", "resnet101": "resnet101",
            "resnet152": "resnet152", "resnext50_32x4d": "resnext50_32x4d", "resnext101_32x8d": "resnext101_32x8d",
            "se_resnet50": "seresnet50 (timm)", "eca_resnet50": "ecaresnet50d (timm)"},
    notes="renames only; deep stem, average-pool shortcut and SE/ECA attention (timm's `se.*`) recognised from the "
          "keys; bottleneck models need stride_3x3=True"))


# ---------------------------------------------------------------------------------------------- MobileNetV2
def _detect_mobilenetv2(keys) -> bool:
    return has_all(keys, "features.0.0.weight", "features.1.conv.0.0.weight", "features.2.conv.3.weight")


def convert_mobilenetv2(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """torchvision MobileNetV2 keys -> ours: ``features.0`` stem, ``features.1..17`` inverted residuals (the first
    without expansion), ``features.18`` the 1x1 head convolution, ``classifier.1``."""
    idx = sorted({int(m[1]) for k in sd if (m := re.match(r"features\.(\d+)\.", k))})
    last = idx[-1]
    expands = {int(m[1]) for k in sd if (m := re.match(r"features\.(\d+)\.conv\.3\.", k))}

    def block(m):
        i, rest = int(m[1]), m[2]
        parts = rest.split(".")
        if i in expands:  # conv.0 (expand), conv.1 (depthwise): ConvNormAct; conv.2 conv, conv.3 bn (project)
            names = {"0": "conv_pw", "1": "conv_dw"}
            if parts[0] in names:
                return f"blocks.{i - 1}.{names[parts[0]]}.{_CNA[parts[1]]}.{'.'.join(parts[2:])}"
        elif parts[0] == "0":  # no expansion: conv.0 depthwise; conv.1 conv, conv.2 bn (project)
            return f"blocks.{i - 1}.conv_dw.{_CNA[parts[1]]}.{'.'.join(parts[2:])}"
        n = int(parts[0]) - (2 if i in expands else 1)
        return f"blocks.{i - 1}.conv_pwl.{'conv' if n == 0 else 'bn'}.{'.'.join(parts[1:])}"

    rules = [
        (r"features\.0\.([01])\.(.+)", lambda m: f"stem.{_CNA[m[1]]}.{m[2]}"),
        (rf"features\.{last}\.([01])\.(.+)", lambda m: f"conv_head.{_CNA[m[1]]}.{m[2]}"),
        (r"features\.(\d+)\.conv\.(.+)", block),
        (r"classifier\.1\.(.+)", r"head.fc.\1"),
    ]
    return rename_keys(sd, rules)


MOBILENETV2 = register_converter(Converter(
    name="torchvision.mobilenetv2", source="torchvision", model_types=(MobileNetV2,), detect=_detect_mobilenetv2,
    convert=convert_mobilenetv2, models={"mobilenetv2": "mobilenet_v2", "coord_mobilenetv2": "mobilenet_v2"},
    notes="renames only"))


# --------------------------------------------------------------------------------------------- EfficientNet
def _detect_efficientnet(keys) -> bool:
    return has_all(keys, "features.0.0.weight", "features.1.0.block.0.0.weight")


def convert_efficientnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """torchvision EfficientNet keys -> ours: ``features.<stage>.<block>.block.<i>`` (expand, depthwise, SE,
    project; no expand in the first stage) to our flat ``blocks.<n>``, ``features.8`` the head convolution."""
    pairs = sorted({(int(m[1]), int(m[2])) for k in sd if (m := re.match(r"features\.(\d+)\.(\d+)\.block\.", k))})
    flat = {p: n for n, p in enumerate(pairs)}
    last = max(int(m[1]) for k in sd if (m := re.match(r"features\.(\d+)\.", k)))
    expanding = {(int(m[1]), int(m[2])) for k in sd if (m := re.match(r"features\.(\d+)\.(\d+)\.block\.3\.", k))}

    def block(m):
        s, b, i, rest = int(m[1]), int(m[2]), m[3], m[4]
        n = flat[(s, b)]
        expands = (s, b) in expanding
        order = ("conv_pw", "conv_dw", "attn", "conv_pwl") if expands else ("conv_dw", "attn", "conv_pwl")
        name = order[int(i)]
        if name == "attn":
            return f"blocks.{n}.attn.{rest}"
        sub, tail = rest.split(".", 1)
        return f"blocks.{n}.{name}.{_CNA[sub]}.{tail}"

    rules = [
        (r"features\.0\.([01])\.(.+)", lambda m: f"stem.{_CNA[m[1]]}.{m[2]}"),
        (rf"features\.{last}\.([01])\.(.+)", lambda m: f"conv_head.{_CNA[m[1]]}.{m[2]}"),
        (r"features\.(\d+)\.(\d+)\.block\.(\d)\.(.+)", block),
        (r"classifier\.1\.(.+)", r"head.fc.\1"),
    ]
    return rename_keys(sd, rules)


EFFICIENTNET = register_converter(Converter(
    name="torchvision.efficientnet", source="torchvision", model_types=(EfficientNet,),
    detect=_detect_efficientnet, convert=convert_efficientnet, models={"efficientnet_b0": "efficientnet_b0"},
    check=lambda model: check_bn_eps(model, 1e-5, "torchvision's EfficientNet (trained in PyTorch)"),
    notes="renames only; nested stages flattened; needs BatchNorm eps 1e-5 (norm_layer='batchnorm'), "
          "ours defaults to the TF reference's 1e-3"))


def check_bn_eps(model: torch.nn.Module, eps: float, source: str, option: str = "norm_layer='batchnorm'") -> None:
    """Refuse a model whose BatchNorm epsilon is not the source network's (it changes every output)."""
    bad = {m.eps for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)} - {eps}
    if bad:
        raise ArchitectureMismatchError(
            f"{source} uses BatchNorm eps {eps:g}; this {type(model).__name__} uses {', '.join(f'{b:g}' for b in sorted(bad))}: "
            f"build it with {option}", options=dict([tuple(s.strip("'") for s in option.split("="))]))
