"""Converters from timm's layouts (timm 1.0.31).

timm's plain ResNet-class networks (ResNet/ResNeXt, SE-/ECA-ResNet, deep stem, average-pool shortcut) share
torchvision's keys and load through ``torchvision.resnet``; the variants below add their own block internals to
those rules.
"""
from __future__ import annotations

import re

import torch

from visionblocks.models.convmixer import ConvMixer
from visionblocks.models.efficientnet import EfficientNet
from visionblocks.models.ghostnet import GhostNet
from visionblocks.models.mlp_mixer import IsotropicMLP
from visionblocks.models.mobilenetv2 import MobileNetV2
from visionblocks.models.mobilevit import MobileViT
from visionblocks.models.repvgg import RepVGG
from visionblocks.models.resnet import ResNet
from visionblocks.models.volo import VOLO

from ._common import check_stride_3x3, has_all, has_any, linears_to_1x1
from .convert import Converter, register_converter, rename_keys
from .torchvision import block_name, resnet_rules

__all__ = ["RESNEST", "RES2NET", "SKRESNET", "EFFICIENTNET", "convert_resnest", "convert_res2net", "convert_skresnet",
           "convert_efficientnet", "GHOSTNET", "convert_ghostnet", "MLP",
           "convert_isotropic_mlp", "fit_shapes", "CONVMIXER", "convert_convmixer", "VOLO_CONVERTER", "convert_volo",
           "MOBILEVIT", "convert_mobilevit", "REPVGG", "convert_repvgg"]


# ---------------------------------------------------------------------------------------------- ResNeSt
_SPLAT = {"conv": ("conv.conv", "conv"), "bn0": ("conv.bn", "bn0"), "fc1": ("fc1.conv", "fc1"),
          "bn1": ("fc1.bn", "bn1"), "fc2": ("fc2",)}  # timm's name -> ours (current first, then former)


def convert_resnest(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's ResNeSt (``resnest50d``...): ResNet rules plus the split-attention convolution ``conv2.{conv, bn0,
    fc1, bn1, fc2}`` (ours: conv-norm units ``conv``, ``fc1`` and the ``fc2`` projection), which ours nests as
    ``conv2.0`` where a strided block pools after it ("avd")."""
    own = model.state_dict()

    def splat(m):
        b = block_name(m)
        unit = f"{b}.conv2.0" if any(k.startswith(f"{b}.conv2.0.") for k in own) else f"{b}.conv2"
        names = [f"{unit}.{n}.{m[4]}" for n in _SPLAT.get(m[3], (m[3],))]
        return next((n for n in names if n in own), names[0])

    return rename_keys(sd, [(r"layer(\d+)\.(\d+)\.conv2\.(conv|bn0|fc1|bn1|fc2)\.(.+)", splat)] + resnet_rules(sd, model))


RESNEST = register_converter(Converter(
    name="timm.resnest", source="timm", model_types=(ResNet,),
    detect=lambda keys: has_all(keys, "layer1.0.conv2.fc1.weight", "layer1.0.conv2.bn0.weight"),
    convert=convert_resnest, check=lambda model: check_stride_3x3(model, "timm's ResNeSt"), priority=1,
    models={"resnest50": "resnest50d"}, notes="renames only"))


# ---------------------------------------------------------------------------------------------- Res2Net
def _identity_last_to_first(width: int, scale: int) -> torch.Tensor:
    """Channel order of ours in the authors'/timm's terms: their last split (the identity) comes first."""
    return torch.cat([torch.arange((scale - 1) * width, scale * width), torch.arange(0, (scale - 1) * width)])


def convert_res2net(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's (and the authors') Res2Net: the split convolutions ``convs.i``/``bns.i`` are ours ``convs.i.conv``/
    ``.bn``, and the identity split, the *last* of the ``scale`` splits in their code, is our *first*: the
    channels of ``conv1``/``bn1`` (outputs) and ``conv3`` (inputs) are permuted accordingly."""
    sd = dict(sd)
    blocks = sorted({(m[1], m[2]) for k in sd if (m := re.match(r"layer(\d+)\.(\d+)\.convs\.0\.weight", k))})
    for i, j in blocks:
        p = f"layer{i}.{j}."
        scale = 1 + len({m[1] for k in sd if (m := re.match(rf"{re.escape(p)}(?:convs|bns)\.(\d+)\.", k))})
        width = sd[p + "bns.0.weight"].shape[0] if p + "bns.0.weight" in sd else sd[p + "convs.0.weight"].shape[0]
        idx = _identity_last_to_first(width, scale)
        for name in ("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"):
            if p + name in sd and sd[p + name].shape[0] == width * scale:  # a damaged tensor is named by the load
                sd[p + name] = sd[p + name][idx]
        if p + "conv3.weight" in sd and sd[p + "conv3.weight"].shape[1] == width * scale:
            sd[p + "conv3.weight"] = sd[p + "conv3.weight"][:, idx]
    rules = [
        (r"layer(\d+)\.(\d+)\.convs\.(\d+)\.weight", lambda m: f"{block_name(m)}.convs.{m[3]}.conv.weight"),
        (r"layer(\d+)\.(\d+)\.bns\.(\d+)\.(.+)", lambda m: f"{block_name(m)}.convs.{m[3]}.bn.{m[4]}"),
    ]
    return rename_keys(sd, rules + resnet_rules(sd, model))


RES2NET = register_converter(Converter(
    name="timm.res2net", source="timm (the authors' Res2Net keys)", model_types=(ResNet,),
    detect=lambda keys: has_all(keys, "layer1.0.convs.0.weight", "layer1.0.bns.0.weight"),
    convert=convert_res2net, priority=1, models={"res2net50_26w_4s": "res2net50_26w_4s"},
    notes="the identity split is their last, our first: conv1/bn1 output and conv3 input channels permuted"))


# ------------------------------------------------------------------------------------------------ SKNet
def convert_skresnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's SK-ResNeXt: conv-norm units ``conv1``/``conv3`` (``.conv``/``.bn``, as ours), the selective-kernel
    ``conv2.paths.i`` (our ``branches.i``), ``attn.fc_reduce``+``attn.bn`` (our ``fuse``), ``attn.fc_select``
    (our ``select``)."""
    rules = [
        (r"layer(\d+)\.(\d+)\.conv([13])\.(conv|bn)\.(.+)", lambda m: f"{block_name(m)}.conv{m[3]}.{m[4]}.{m[5]}"),
        (r"layer(\d+)\.(\d+)\.conv2\.paths\.(\d+)\.(.+)", lambda m: f"{block_name(m)}.conv2.branches.{m[3]}.{m[4]}"),
        (r"layer(\d+)\.(\d+)\.conv2\.attn\.fc_reduce\.(.+)", lambda m: f"{block_name(m)}.conv2.fuse.conv.{m[3]}"),
        (r"layer(\d+)\.(\d+)\.conv2\.attn\.bn\.(.+)", lambda m: f"{block_name(m)}.conv2.fuse.bn.{m[3]}"),
        (r"layer(\d+)\.(\d+)\.conv2\.attn\.fc_select\.(.+)", lambda m: f"{block_name(m)}.conv2.select.{m[3]}"),
    ]
    return rename_keys(sd, rules + resnet_rules(sd, model))


SKRESNET = register_converter(Converter(
    name="timm.skresnet", source="timm", model_types=(ResNet,),
    detect=lambda keys: has_any(keys, r"layer1\.0\.conv2\.paths\.0\.conv\.weight"),
    convert=convert_skresnet, priority=1, models={"sk_resnet50": "skresnext50_32x4d"},
    check=lambda model: check_stride_3x3(model, "timm's SK-ResNeXt"), notes="renames only"))


# ------------------------------------------------------------------- MobileNetV2 / EfficientNet (incl. CondConv)
_IR = {"conv_pw": "conv_pw.conv", "bn1": "conv_pw.bn", "conv_dw": "conv_dw.conv", "bn2": "conv_dw.bn",
       "conv_pwl": "conv_pwl.conv", "bn3": "conv_pwl.bn"}  # timm's InvertedResidual -> our MBConv
_DS = {"conv_dw": "conv_dw.conv", "bn1": "conv_dw.bn", "conv_pw": "conv_pwl.conv", "bn2": "conv_pwl.bn"}  # no expansion
_SE = {"conv_reduce": "fc1", "conv_expand": "fc2"}


def convert_efficientnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's EfficientNet-builder networks (MobileNetV2, EfficientNet, CondConv-EfficientNet): ``conv_stem``/
    ``bn1`` stem, nested ``blocks.<stage>.<block>`` flattened to our ``blocks.<n>``, ``se.conv_reduce/expand``
    (our ``attn.fc1/fc2``), ``conv_head``/``bn2`` and ``classifier``.  CondConv expert kernels, flattened per expert
    in timm, are reshaped to ours (experts, out, in/groups, k, k)."""
    own = model.state_dict()
    pairs = sorted({(int(m[1]), int(m[2])) for k in sd if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", k))})
    flat = {p: n for n, p in enumerate(pairs)}
    expanding = {(int(m[1]), int(m[2])) for k in sd if (m := re.match(r"blocks\.(\d+)\.(\d+)\.(conv_pwl|bn3)\.", k))}

    def block(m):
        s, b, name, rest = int(m[1]), int(m[2]), m[3], m[4]
        n = flat[(s, b)]
        if name == "se":
            sub, tail = rest.split(".", 1)
            return f"blocks.{n}.attn.{_SE.get(sub, sub)}.{tail}"
        if f"blocks.{n}.conv_dw.conv.weight" not in own:  # a block of plain names (CondConv): as timm's
            return f"blocks.{n}.{'routing' if name == 'routing_fn' else name}.{rest}"
        table = _IR if (s, b) in expanding else _DS
        return f"blocks.{n}.{table.get(name, name)}.{rest}"

    out = rename_keys(sd, [
        (r"conv_stem\.weight", "stem.conv.weight"), (r"bn1\.(.+)", r"stem.bn.\1"),
        (r"conv_head\.weight", "conv_head.conv.weight"), (r"bn2\.(.+)", r"conv_head.bn.\1"),
        (r"blocks\.(\d+)\.(\d+)\.([a-z_0-9]+)\.(.+)", block),
        (r"classifier\.(.+)", r"head.fc.\1"),
    ])
    for k, v in out.items():  # CondConv expert banks: (experts, out * in/g * k * k) -> (experts, out, in/g, k, k)
        if k in own and v.ndim == 2 and own[k].ndim == 5 and v.numel() == own[k].numel():
            out[k] = v.reshape(own[k].shape)
    return out


def _check_efficientnet(model) -> None:
    from .torchvision import check_bn_eps
    check_bn_eps(model, 1e-5, "timm's EfficientNet/MobileNetV2 (trained in PyTorch; the tf_* ports use TF 'same' "
                              "padding, which ours does not have)")


EFFICIENTNET = register_converter(Converter(
    name="timm.efficientnet", source="timm", model_types=(MobileNetV2, EfficientNet),
    detect=lambda keys: has_all(keys, "conv_stem.weight", "blocks.0.0.conv_dw.weight"),
    convert=convert_efficientnet, check=_check_efficientnet,
    models={"mobilenetv2": "mobilenetv2_100", "coord_mobilenetv2": "mobilenetv2_100",
            "efficientnet_b0": "efficientnet_b0", "condconv_efficientnet_b0_8e": "efficientnet_cc_b0_8e"},
    notes="renames; CondConv expert kernels reshaped from timm's flat per-expert rows; EfficientNets need BatchNorm "
          "eps 1e-5 (norm_layer='batchnorm')"))


# ------------------------------------------------------------------------------------------------ GhostNet
_GHOST = {"primary_conv.0": "primary.conv", "primary_conv.1": "primary.bn", "cheap_operation.0": "cheap.conv",
          "cheap_operation.1": "cheap.bn", "conv_dw": "conv_dw.conv", "bn_dw": "conv_dw.bn", "se.conv_reduce": "attn.fc1",
          "se.conv_expand": "attn.fc2", "shortcut.0": "shortcut.0.conv", "shortcut.1": "shortcut.0.bn",
          "shortcut.2": "shortcut.1.conv", "shortcut.3": "shortcut.1.bn", "conv": "conv", "bn1": "bn"}


def convert_ghostnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's GhostNet (the authors' keys): nested ``blocks.<stage>.<block>`` flattened, ghost modules'
    ``primary_conv``/``cheap_operation`` Sequentials to our ``primary``/``cheap`` conv-norm units, ``se`` to ``attn``,
    the last stage's ``ConvBnAct`` (``conv``/``bn1``), ``conv_head`` and ``classifier``."""
    pairs = sorted({(int(m[1]), int(m[2])) for k in sd if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", k))})
    flat = {p: n for n, p in enumerate(pairs)}
    alternatives = "|".join(re.escape(k) for k in sorted(_GHOST, key=len, reverse=True))

    def block(m):
        n = flat[(int(m[1]), int(m[2]))]
        return f"blocks.{n}.{m[3] or ''}{_GHOST[m[4]]}.{m[5]}"

    return rename_keys(sd, [
        (r"conv_stem\.weight", "stem.conv.weight"), (r"bn1\.(.+)", r"stem.bn.\1"),
        (rf"blocks\.(\d+)\.(\d+)\.(ghost[12]\.)?({alternatives})\.([a-z_]+)", block),
        (r"classifier\.(.+)", r"head.fc.\1"),
    ])


GHOSTNET = register_converter(Converter(
    name="timm.ghostnet", source="timm (the authors' GhostNet keys)", model_types=(GhostNet,),
    detect=lambda keys: has_all(keys, "conv_stem.weight", "blocks.0.0.ghost1.primary_conv.0.weight"),
    convert=convert_ghostnet, models={"ghostnet_100": "ghostnet_100"}, notes="renames only"))


# ------------------------------------------------------------------------ MLP-Mixer / ResMLP / gMLP (isotropic)
def _pick(own, *names: str) -> str:
    """The first of ``names`` that is one of our keys (current name first, then a former one)."""
    return next((n for n in names if n in own), names[0])


def fit_shapes(sd: dict[str, torch.Tensor], own: dict[str, torch.Tensor], pattern: str) -> dict[str, torch.Tensor]:
    """Reshape the tensors whose key matches ``pattern`` to our shape where they differ only by singleton dims
    (timm's ``(1, 1, C)`` affine vectors are our ``(C,)``)."""
    pat = re.compile(pattern)
    for k, v in sd.items():
        if pat.fullmatch(k) and k in own and v.shape != own[k].shape and \
                [d for d in v.shape if d != 1] == [d for d in own[k].shape if d != 1]:
            sd[k] = v.reshape(own[k].shape)
    return sd


def convert_isotropic_mlp(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's MLP-Mixer, ResMLP and gMLP (one ``MlpMixer`` class): ``stem.proj`` is our ``stem``; Mixer's
    ``mlp_tokens``/``mlp_channels``, ResMLP's ``linear_tokens``/``mlp_channels`` and gMLP's ``mlp_channels.fc1``/
    ``.gate``/``.fc2`` are our token/channel MLPs and gMLP's ``proj_in``/``sgu``/``proj_out``; ResMLP's affine
    vectors ``(1, 1, C)`` are ours ``(C,)``; ``head`` is our ``head.fc``."""
    own = model.state_dict()
    gmlp = any(".mlp_channels.gate." in k for k in sd)

    def block(m):
        i, name, rest = m[1], m[2], m[3]
        b = f"blocks.{i}"
        if name == "mlp_tokens":
            return _pick(own, f"{b}.token_mlp.{rest}", f"{b}.mlp_tokens.{rest}")
        if name == "linear_tokens":
            return _pick(own, f"{b}.token_fc.{rest}", f"{b}.linear_tokens.{rest}")
        if name == "mlp_channels" and gmlp:
            sub, tail = rest.split(".", 1)
            ours = {"fc1": "proj_in", "gate": "sgu", "fc2": "proj_out"}[sub]
            return f"{b}.{ours}.{tail}"
        if name == "mlp_channels":
            return _pick(own, f"{b}.channel_mlp.{rest}", f"{b}.mlp.{rest}", f"{b}.mlp_channels.{rest}")
        return f"{b}.{name}.{rest}"

    out = rename_keys(sd, [
        (r"stem\.proj\.(.+)", r"stem.\1"),
        (r"blocks\.(\d+)\.([a-z_0-9]+)\.(.+)", block),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    ])
    return fit_shapes(out, own, r".*\.(alpha|beta)")


MLP = register_converter(Converter(
    name="timm.mlp_mixer", source="timm (MLP-Mixer, ResMLP, gMLP)", model_types=(IsotropicMLP,),
    detect=lambda keys: has_any(keys, r"stem\.proj\.(weight|bias)") and
    has_any(keys, r"blocks\.0\.(mlp_tokens|linear_tokens|mlp_channels)\..+"),
    convert=convert_isotropic_mlp,
    models={"mixer_s16": "mixer_s16_224", "mixer_b16": "mixer_b16_224", "resmlp_12": "resmlp_12_224",
            "resmlp_24": "resmlp_24_224", "resmlp_36": "resmlp_36_224", "gmlp_ti16": "gmlp_ti16_224",
            "gmlp_s16": "gmlp_s16_224", "gmlp_b16": "gmlp_b16_224"},
    notes="renames; ResMLP's (1, 1, C) affine vectors reshaped to (C,)"))


# ------------------------------------------------------------------------------------------------ ConvMixer
def convert_convmixer(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's ConvMixer (the authors' ``Residual(Sequential(dw, GELU, BN))``, pointwise, GELU, BN): ``blocks.i.0.fn.0``
    and ``.0.fn.2`` are our ``dw``/``bn1``, ``.1``/``.3`` our ``pw``/``bn2``; ``head`` is our ``head.fc``."""
    names = {"0.fn.0": "dw", "0.fn.2": "bn1", "1": "pw", "3": "bn2"}
    return rename_keys(sd, [
        (r"blocks\.(\d+)\.(0\.fn\.0|0\.fn\.2|1|3)\.(.+)", lambda m: f"blocks.{m[1]}.{names[m[2]]}.{m[3]}"),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    ])


CONVMIXER = register_converter(Converter(
    name="timm.convmixer", source="timm (the authors' ConvMixer keys)", model_types=(ConvMixer,),
    detect=lambda keys: has_all(keys, "stem.0.weight", "blocks.0.0.fn.0.weight", "blocks.0.1.weight"),
    convert=convert_convmixer, models={"convmixer_768_32": "convmixer_768_32", "convmixer_1536_20": "convmixer_1536_20"},
    notes="renames only"))


# ------------------------------------------------------------------------------------------------------ VOLO
def convert_volo(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's VOLO (the authors' keys): ``patch_embed.conv`` (conv, BN, ReLU x3) and ``proj`` are our ``stem``;
    ``network.0`` the outlookers, ``network.1`` the downsampling, ``network.2..`` the transformer stages (our flat
    ``blocks``), ``post_network`` our ``post``; the outlookers' linear ``v``/``attn``/``proj`` are our 1x1
    convolutions; the ``(1, H, W, C)`` position embedding is our ``(1, C, H, W)``."""
    own = model.state_dict()
    pairs = sorted({(int(m[1]), int(m[2])) for k in sd if (m := re.match(r"network\.(\d+)\.(\d+)\.", k)) and int(m[1]) >= 2})
    flat = {p: n for n, p in enumerate(pairs)}
    stem = {"0": "0.conv", "1": "0.bn", "3": "1.conv", "4": "1.bn", "6": "2.conv", "7": "2.bn"}
    out = rename_keys(sd, [
        (r"patch_embed\.conv\.(\d)\.(.+)", lambda m: f"stem.{stem[m[1]]}.{m[2]}"),
        (r"patch_embed\.proj\.(.+)", lambda m: f"stem.{len(stem) // 2}.{m[1]}"),
        (r"network\.0\.(\d+)\.(.+)", r"outlookers.\1.\2"),
        (r"network\.1\.proj\.(.+)", r"downsample.\1"),
        (r"network\.(\d+)\.(\d+)\.(.+)", lambda m: f"blocks.{flat[(int(m[1]), int(m[2]))]}.{m[3]}"),
        (r"post_network\.(.+)", r"post.\1"),
    ])
    if "pos_embed" in out and "pos_embed" in own and out["pos_embed"].shape != own["pos_embed"].shape:
        out["pos_embed"] = out["pos_embed"].permute(0, 3, 1, 2)
    return linears_to_1x1(out, own)


VOLO_CONVERTER = register_converter(Converter(
    name="timm.volo", source="timm (the authors' VOLO keys)", model_types=(VOLO,),
    detect=lambda keys: has_all(keys, "patch_embed.conv.0.weight", "network.0.0.attn.v.weight"),
    convert=convert_volo, classifier=("head", "aux_head"), models={"volo_d1": "volo_d1_224"},
    notes="position embedding permuted (1, H, W, C) -> (1, C, H, W); outlooker linears as 1x1 convolutions"))


# ------------------------------------------------------------------------------------------- MobileViT v1/v2
_MOBILEVIT = ((r"\.conv1_1x1\.", ".conv_pw."), (r"\.conv2_kxk\.", ".conv_dw."), (r"\.conv3_1x1\.", ".conv_pwl."),
              (r"\.conv_1x1\.", ".conv_1x1_in."), (r"\.transformer\.", ".layers."), (r"\.mlp\.", ".ffn."),
              (r"\.attn\.qkv_proj\.", ".attn.qkv."), (r"\.attn\.out_proj\.", ".attn.proj."))


def convert_mobilevit(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's MobileViT and MobileViTv2 (the authors' ml-cvnets structure, timm's names): inverted residuals'
    ``conv1_1x1``/``conv2_kxk``/``conv3_1x1`` are our ``conv_pw``/``conv_dw``/``conv_pwl``; a MobileViT block's
    ``conv_1x1``, ``transformer.i`` (``mlp``; v2: ``attn.qkv_proj``/``out_proj``) are our ``conv_1x1_in``,
    ``layers.i`` (``ffn``; ``attn.qkv``/``proj``).  Keys whose renamed form is not ours are kept as timm names them
    (a strict load then names them)."""
    own = model.state_dict()
    out = {}
    for k, v in sd.items():
        new = k
        for pat, rep in _MOBILEVIT:
            new = re.sub(pat, rep, new)
        out[_pick(own, new, k)] = v
    return out


MOBILEVIT = register_converter(Converter(
    name="timm.mobilevit", source="timm", model_types=(MobileViT,),
    detect=lambda keys: has_all(keys, "stem.conv.weight", "stages.0.0.conv1_1x1.conv.weight") and
    has_any(keys, r"stages\.\d+\.\d+\.transformer\.0\..+"), convert=convert_mobilevit,
    models={"mobilevit_xxs": "mobilevit_xxs", "mobilevit_xs": "mobilevit_xs", "mobilevit_s": "mobilevit_s",
            "mobilevitv2_050": "mobilevitv2_050", "mobilevitv2_100": "mobilevitv2_100",
            "mobilevitv2_200": "mobilevitv2_200"}, notes="renames only"))


# ------------------------------------------------------------------------------------------------- RepVGG
def convert_repvgg(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's RepVGG (``byobnet``), both forms: the training form's ``conv_kxk``/``conv_1x1``/``identity``
    branches and the folded form's ``reparam_conv`` live under our re-parameterizable unit's ``body``."""
    own = model.state_dict()
    folded = any(".reparam_conv." in k for k in sd)
    if folded != any(re.fullmatch(r"stem\.body\.weight", k) for k in own):
        from .errors import ArchitectureMismatchError
        raise ArchitectureMismatchError(
            f"the checkpoint is RepVGG's {'folded (deploy)' if folded else 'training'} form, the model is not: build it "
            f"with deploy={folded}" + ("" if folded else " (or load into the training form and call "
                                                          "visionblocks.reparameterize)"), options={"deploy": folded})

    def unit(m):
        return _pick(own, f"{m[1]}.body.{m[3]}" if m[2] == "reparam_conv" else f"{m[1]}.body.{m[2]}.{m[3]}",
                     f"{m[1]}.{m[2]}.{m[3]}")

    return rename_keys(sd, [(r"(stem|stages\.\d+\.\d+)\.(conv_kxk|conv_1x1|identity|reparam_conv)\.(.+)", unit)])


REPVGG = register_converter(Converter(
    name="timm.repvgg", source="timm", model_types=(RepVGG,),
    detect=lambda keys: has_any(keys, r"stem\.(conv_kxk\.conv|reparam_conv)\.weight") and
    has_any(keys, r"stages\.0\.0\.(conv_kxk\.conv|reparam_conv)\.weight"),
    convert=convert_repvgg,
    models={"repvgg_a0": "repvgg_a0", "repvgg_a1": "repvgg_a1", "repvgg_b0": "repvgg_b0"},
    notes="renames; training and folded forms (the model's deploy= must match)"))
