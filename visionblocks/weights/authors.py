"""Converters from the layouts of the papers' authors' own code (their released checkpoints).

Each converter names the repository (and the commit its harness case was verified at: see docs/weights.md).
Nothing of the authors' code is here: only which of their tensors is which of ours.
"""
from __future__ import annotations

import re

import torch

from visionblocks.models.convmixer import ConvMixer
from visionblocks.models.mlp_mixer import IsotropicMLP
from visionblocks.models.repvgg import RepVGG
from visionblocks.models.resnet import ResNet

from ._common import check_stride_3x3, has_all, has_any, linears_to_1x1
from .convert import Converter, register_converter, rename_keys
from .errors import ArchitectureMismatchError
from .timm import _pick, fit_shapes
from .torchvision import block_name, resnet_rules

__all__ = ["REPVGG", "CONVMIXER", "CBAM", "RESMLP", "ATTENTION_RESNET", "convert_repvgg", "convert_convmixer",
           "convert_cbam", "convert_resmlp", "convert_attention_resnet"]


# ------------------------------------------------------------------------------- RepVGG (DingXiaoH/RepVGG)
_RBR = {"rbr_dense": "conv_kxk", "rbr_1x1": "conv_1x1", "rbr_identity": "identity"}


def convert_repvgg(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' RepVGG: ``stage0`` is our ``stem``, ``stage<i>.<j>`` our ``stages.<i-1>.<j>``; a block's
    ``rbr_dense``/``rbr_1x1``/``rbr_identity`` branches (training form) or ``rbr_reparam`` (deployed form) live
    under our unit's ``body``; ``linear`` is our ``head.fc``."""
    own = model.state_dict()
    folded = any(".rbr_reparam." in k for k in sd)
    if folded != ("stem.body.weight" in own):
        raise ArchitectureMismatchError(
            f"the checkpoint is RepVGG's {'deployed' if folded else 'training'} form, the model is not: build it with "
            f"deploy={folded}", options={"deploy": folded})

    def unit(m):
        where = "stem" if m[1] == "0" else f"stages.{int(m[1]) - 1}.{m[2]}"
        if m[3] == "rbr_reparam":
            return f"{where}.body.{m[4]}"
        return _pick(own, f"{where}.body.{_RBR[m[3]]}.{m[4]}", f"{where}.{_RBR[m[3]]}.{m[4]}")

    return rename_keys(sd, [
        (r"stage(0)()\.(rbr_dense|rbr_1x1|rbr_identity|rbr_reparam)\.(.+)", unit),
        (r"stage(\d)\.(\d+)\.(rbr_dense|rbr_1x1|rbr_identity|rbr_reparam)\.(.+)", unit),
        (r"linear\.(.+)", r"head.fc.\1"),
    ])


REPVGG = register_converter(Converter(
    name="authors.repvgg", source="authors: DingXiaoH/RepVGG", model_types=(RepVGG,),
    detect=lambda keys: has_any(keys, r"stage0\.(rbr_dense\.conv|rbr_reparam)\.weight"), convert=convert_repvgg,
    models={"repvgg_a0": "create_RepVGG_A0", "repvgg_a1": "create_RepVGG_A1", "repvgg_b0": "create_RepVGG_B0"},
    notes="renames; training and deployed forms (the model's deploy= must match)"))


# ---------------------------------------------------------------------------- ConvMixer (locuslab/convmixer)
def convert_convmixer(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' ConvMixer is one ``nn.Sequential``: ``0``/``2`` the patch convolution and its BN, ``3 .. 3+d-1``
    the mixer layers (``0.fn.0`` depthwise, ``0.fn.2`` BN, ``1`` pointwise, ``3`` BN), the last index the
    classifier."""
    layers = sorted({int(m[1]) for k in sd if (m := re.match(r"(\d+)\.0\.fn\.0\.", k))})
    last = max(int(k.split(".", 1)[0]) for k in sd)
    names = {"0.fn.0": "dw", "0.fn.2": "bn1", "1": "pw", "3": "bn2"}
    first = layers[0] if layers else 3
    return rename_keys(sd, [
        (r"([02])\.(.+)", r"stem.\1.\2"),
        (rf"{last}\.(weight|bias)", r"head.fc.\1"),
        (r"(\d+)\.(0\.fn\.0|0\.fn\.2|1|3)\.(.+)", lambda m: f"blocks.{int(m[1]) - first}.{names[m[2]]}.{m[3]}"),
    ])


CONVMIXER = register_converter(Converter(
    name="authors.convmixer", source="authors: locuslab/convmixer", model_types=(ConvMixer,),
    detect=lambda keys: has_all(keys, "0.weight", "3.0.fn.0.weight"), convert=convert_convmixer,
    models={"convmixer_1536_20": "ConvMixer(1536, 20, kernel_size=9, patch_size=7)"},
    notes="renames (the authors' convmixer.py network is one nn.Sequential, with GELU; their released checkpoints "
          "were trained with their timm fork and are in timm's layout)"))


# ------------------------------------------------------------------------ CBAM (Jongchan/attention-module)
def convert_cbam(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' CBAM-ResNet (torchvision-style ResNet keys, stride in the 3x3): ``cbam.ChannelGate.mlp.1/3``
    (linears) are our channel gate's 1x1 ``fc1``/``fc2``; their spatial gate reads ``[max, mean]`` over channels,
    ours ``[mean, max]``, so the 7x7 kernel's two input channels are swapped."""
    own = model.state_dict()

    def gate(m):
        b, rest = block_name(m), m[3]
        rest = rest.replace("ChannelGate.mlp.1.", "channel_gate.mlp.fc1.").replace("ChannelGate.mlp.3.", "channel_gate.mlp.fc2.")
        rest = rest.replace("SpatialGate.spatial.", "spatial_gate.")
        return f"{b}.attn.{rest}"

    sd = dict(sd)
    for k in [k for k in sd if k.endswith("SpatialGate.spatial.conv.weight")]:
        if sd[k].shape[1] == 2:
            sd[k] = sd[k].flip(1)  # [max, mean] -> [mean, max]
    out = rename_keys(sd, [(r"layer(\d+)\.(\d+)\.cbam\.(.+)", gate)] + resnet_rules(sd, model))
    return linears_to_1x1(out, own)


CBAM = register_converter(Converter(
    name="authors.cbam", source="authors: Jongchan/attention-module", model_types=(ResNet,),
    detect=lambda keys: has_any(keys, r"layer1\.0\.cbam\.ChannelGate\.mlp\.1\.weight"), convert=convert_cbam,
    check=lambda model: check_stride_3x3(model, "The CBAM authors'"), priority=1,
    models={"cbam_resnet50": "ResidualNet('ImageNet', 50, 1000, 'CBAM')"},
    notes="spatial gate's [max, mean] input channels swapped to our [mean, max]; MLP linears as 1x1 convolutions; "
          "needs stride_3x3=True (their bottleneck strides in the 3x3)"))


# -------------------------------------------------------------------------- ResMLP (facebookresearch/deit)
def convert_resmlp(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' ResMLP (``resmlp_models.py``): ``patch_embed.proj`` is our ``stem``, a block's ``attn`` (the
    cross-patch linear) our ``token_fc``, ``gamma_1``/``gamma_2`` our ``ls1``/``ls2``, ``head`` our ``head.fc``."""
    own = model.state_dict()

    def block(m):
        i, name, rest = m[1], m[2], m[3]
        b = f"blocks.{i}"
        if name == "attn":
            return _pick(own, f"{b}.token_fc.{rest}", f"{b}.linear_tokens.{rest}")
        if name == "mlp":
            return _pick(own, f"{b}.mlp.{rest}", f"{b}.channel_mlp.{rest}")
        return f"{b}.{name}.{rest}"

    out = rename_keys(sd, [
        (r"patch_embed\.proj\.(.+)", r"stem.\1"),
        (r"blocks\.(\d+)\.gamma_([12])", lambda m: f"blocks.{m[1]}.ls{m[2]}"),
        (r"blocks\.(\d+)\.([a-z_0-9]+)\.(.+)", block),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    ])
    return fit_shapes(out, own, r".*\.(alpha|beta)")


RESMLP = register_converter(Converter(
    name="authors.resmlp", source="authors: facebookresearch/deit (resmlp_models.py)", model_types=(IsotropicMLP,),
    detect=lambda keys: has_any(keys, r"blocks\.0\.gamma_1") and has_any(keys, r"blocks\.0\.attn\.weight"),
    convert=convert_resmlp, models={"resmlp_12": "resmlp_12", "resmlp_24": "resmlp_24", "resmlp_36": "resmlp_36"},
    notes="renames"))


# ---------------------------------------------- attention ResNets in torchvision's layout (SA-Net, SGE, ECA-Net)
_ATTN_NAMES = ("sa", "sge", "eca")  # the attribute each author gave the attention inside a bottleneck


def convert_attention_resnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' attention ResNets written on torchvision's ResNet (stride in the 3x3): SA-Net's ``sa``
    (wofmanaf/SA-Net), SGE's ``sge`` (implus/PytorchInsight) and ECA-Net's ``eca`` (BangguWu/ECANet) modules are
    our ``attn``; their parameters keep their names."""
    names = "|".join(_ATTN_NAMES)
    return rename_keys(sd, [(rf"layer(\d+)\.(\d+)\.(?:{names})\.(.+)", lambda m: f"{block_name(m)}.attn.{m[3]}")]
                       + resnet_rules(sd, model))


ATTENTION_RESNET = register_converter(Converter(
    name="authors.attention_resnet", source="authors: wofmanaf/SA-Net, implus/PytorchInsight (SGE), BangguWu/ECANet",
    model_types=(ResNet,),
    detect=lambda keys: has_any(keys, rf"layer1\.0\.(?:{'|'.join(_ATTN_NAMES)})\..+") and
    has_all(keys, "layer1.0.conv2.weight"), convert=convert_attention_resnet, priority=1,
    check=lambda model: check_stride_3x3(model, "The authors' (torchvision-based)"),
    models={"sa_resnet50": "sa_resnet50", "sge_resnet50": "sge_resnet50"},
    notes="renames (their attention module is our attn); needs stride_3x3=True"))
