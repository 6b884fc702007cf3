"""Converters from the layouts of the papers' authors' own code for CNNs and re-parameterizable networks:
ECA-Net (BangguWu/ECANet), SCNet (MCG-NKU/SCNet), DBB ResNet-18 (DingXiaoH/DiverseBranchBlock), ACNet ResNet-18
(DingXiaoH/ACNet), RepMLPNet (DingXiaoH/RepMLP), CoResNet (iduta/coconv), EPSANet (murufeng/EPSANet) and
BAM ResNet-50 (Jongchan/attention-module).

Each converter names the repository (and the commit its harness case was verified at: see docs/weights.md).
Nothing of the authors' code is here: only which of their tensors is which of ours.
"""
from __future__ import annotations

import re

import torch

from visionblocks.models.repmlpnet import RepMLPNet
from visionblocks.models.resnet import ResNet

from ._common import check_stride_3x3, has_all, has_any, linears_to_1x1
from .authors import convert_attention_resnet
from .convert import Converter, register_converter, rename_keys
from .errors import ArchitectureMismatchError
from .timm import _pick
from .torchvision import block_name, resnet_rules

__all__ = ["ECA", "SCNET", "DBB", "ACNET", "convert_eca", "convert_scnet", "convert_dbb_resnet",
           "convert_acnet_resnet", "REPMLPNET", "convert_repmlpnet", "CORESNET", "convert_coresnet",
           "EPSANET", "convert_epsanet"]


# ----------------------------------------------------------------------------------------- ECA-Net (BangguWu/ECANet)
def _stage_kernel_sizes(keys_shapes, pattern: str) -> dict[int, int]:
    """``{stage: kernel size}`` of the first block of each stage whose ECA weight matches ``pattern``."""
    out: dict[int, int] = {}
    for k, shape in keys_shapes:
        m = re.fullmatch(pattern, k)
        if m:
            out.setdefault(int(m[1]), int(shape[-1]))
    return out


def convert_eca(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' ECA-ResNet (``models/eca_resnet.py``, torchvision's ResNet with the stride in the 3x3):
    ``layer<i>.<j>.eca.conv`` (the 1-D convolution, shape (1, 1, k)) is our ``stages.<i-1>.<j>.attn.conv``; the
    rest is torchvision's ResNet.  Their ResNet takes one kernel size per stage (``k_size``; the released
    ECA-Net50: 3, 5, 5, 7); a model with other kernel sizes is refused naming ``eca_kernel_sizes``."""
    theirs = _stage_kernel_sizes(((k, v.shape) for k, v in sd.items()), r"layer(\d+)\.\d+\.eca\.conv\.weight")
    ours = _stage_kernel_sizes(((k, v.shape) for k, v in model.state_dict().items()),
                               r"stages\.(\d+)\.\d+\.attn\.conv\.weight")
    want = tuple(theirs[i] for i in sorted(theirs))
    have = tuple(ours[i] for i in sorted(ours))
    if want != have:
        raise ArchitectureMismatchError(
            f"the checkpoint's ECA kernel sizes per stage are {want}, the model's {have}: build it with "
            f"eca_kernel_sizes={want}", options={"eca_kernel_sizes": want})
    return convert_attention_resnet(sd, model)


ECA = register_converter(Converter(
    name="authors.eca", source="authors: BangguWu/ECANet", model_types=(ResNet,),
    detect=lambda keys: has_any(keys, r"layer1\.0\.eca\.conv\.weight") and has_all(keys, "layer1.0.conv2.weight"),
    convert=convert_eca, priority=2, check=lambda model: check_stride_3x3(model, "The ECA-Net authors'"),
    models={"eca_resnet50": "eca_resnet50"},
    notes="renames (their eca module is our attn); needs stride_3x3=True and their per-stage kernel sizes "
          "(eca_kernel_sizes, released ECA-Net50: (3, 5, 5, 7))"))


# ----------------------------------------------------------------------------------------- SCNet (MCG-NKU/SCNet)
_SC_UNITS = {"k1.0": "k1.conv", "k1.1": "k1.bn", "scconv.k2.1": "k2.conv", "scconv.k2.2": "k2.bn",
             "scconv.k3.0": "k3.conv", "scconv.k3.1": "k3.bn", "scconv.k4.0": "k4.conv", "scconv.k4.1": "k4.bn"}


def convert_scnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' SCNet (``scnet.py``, ``SCBottleneck``): their two 1x1 convolutions ``conv1_a``/``conv1_b`` (and
    BNs ``bn1_a``/``bn1_b``) are the two halves of our one ``conv1`` (``a`` first: it feeds K1, ``b`` the
    self-calibrated half), stacked along the output channels; ``k1`` and ``scconv.k2/k3/k4`` are our
    self-calibrated convolution's ``conv2.k1..k4`` (their K2 Sequential starts with the pooling, so its conv is
    ``.1``); the rest is torchvision's ResNet."""
    sd = dict(sd)
    for key in [k for k in sd if k.endswith(".conv1_a.weight")]:
        p = key[: -len(".conv1_a.weight")]
        sd[f"{p}.conv1.weight"] = torch.cat([sd.pop(f"{p}.conv1_a.weight"), sd.pop(f"{p}.conv1_b.weight")])
        for name in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{p}.bn1.{name}"] = torch.cat([sd.pop(f"{p}.bn1_a.{name}"), sd.pop(f"{p}.bn1_b.{name}")])
        if f"{p}.bn1_a.num_batches_tracked" in sd:
            sd[f"{p}.bn1.num_batches_tracked"] = sd.pop(f"{p}.bn1_a.num_batches_tracked")
            sd.pop(f"{p}.bn1_b.num_batches_tracked", None)
    units = "|".join(re.escape(u) for u in _SC_UNITS)
    return rename_keys(sd, [(rf"layer(\d+)\.(\d+)\.({units})\.(.+)",
                             lambda m: f"{block_name(m)}.conv2.{_SC_UNITS[m[3]]}.{m[4]}")] + resnet_rules(sd, model))


SCNET = register_converter(Converter(
    name="authors.scnet", source="authors: MCG-NKU/SCNet", model_types=(ResNet,),
    detect=lambda keys: has_any(keys, r"layer1\.0\.scconv\.k2\.1\.weight"), convert=convert_scnet, priority=1,
    models={"scnet50": "scnet50"},
    notes="their two half-width 1x1 convolutions (conv1_a, conv1_b) and BNs stacked into our one conv1; K1..K4 "
          "renamed"))


# ------------------------------------------------------------------ DBB ResNet-18 (DingXiaoH/DiverseBranchBlock)
_DBB_BRANCHES = [
    (r"dbb_origin\.(conv|bn)\.(.+)", r"origin.\1.\2"),
    (r"dbb_1x1\.(conv|bn)\.(.+)", r"conv_1x1.\1.\2"),
    (r"dbb_avg\.conv\.(.+)", r"avg.pre.conv.\1"), (r"dbb_avg\.bn\.bn\.(.+)", r"avg.pre.bn.bn.\1"),
    (r"dbb_avg\.avgbn\.(.+)", r"avg.bn.\1"),
    (r"dbb_1x1_kxk\.(?:idconv1|conv1)\.(.+)", r"conv_1x1_kxk.conv1.\1"),
    (r"dbb_1x1_kxk\.bn1\.bn\.(.+)", r"conv_1x1_kxk.bn1.bn.\1"),
    (r"dbb_1x1_kxk\.(conv2|bn2)\.(.+)", r"conv_1x1_kxk.\1.\2"),
    (r"dbb_reparam\.(weight|bias)", r"\1"),
]


def _conv_bias_as_bn(sd: dict[str, torch.Tensor], conv: str, bn: str, eps: float) -> None:
    """Replace the folded conv's bias ``<conv>.bias`` by an identity BatchNorm ``<bn>.*`` carrying that bias
    (weight 1, mean 0, variance 1 - eps: ``(x - 0) / sqrt(1 - eps + eps) * 1 + b``, exact to rounding)."""
    b = sd.pop(f"{conv}.bias")
    sd.update({f"{bn}.weight": torch.ones_like(b), f"{bn}.bias": b, f"{bn}.running_mean": torch.zeros_like(b),
               f"{bn}.running_var": torch.full_like(b, 1.0 - eps),
               f"{bn}.num_batches_tracked": torch.zeros((), dtype=torch.long, device=b.device)})


def convert_dbb_resnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' ResNet-18 (``resnet.py`` with ``convnet_utils.switch_conv_bn_impl("DBB")``): ``stage0.conv1`` is
    our stem's conv-BN, ``stage<i>.<j>`` our ``stages.<i-1>.<j>``, ``linear`` our ``head.fc``; inside a DBB their
    ``dbb_origin``/``dbb_1x1``/``dbb_avg``/``dbb_1x1_kxk`` branches are our ``body.origin``/``conv_1x1``/``avg``/
    ``conv_1x1_kxk`` (their ``dbb_avg.conv`` + ``.bn`` are our ``avg.pre``, their ``avgbn`` our ``avg.bn``; their
    identity-initialised ``idconv1`` our ``conv1``).  Their deployed form (``convert.py``: ``dbb_reparam``, our
    ``body`` of ``deploy=True``) also folds the stem's and shortcuts' BN into a conv bias, where ours keep a
    conv-BN: that bias becomes an identity BN (weight 1, mean 0, variance 1 - eps) carrying it.  The model's
    deploy must match the checkpoint's form."""
    own = model.state_dict()
    folded = any(".dbb_reparam." in k for k in sd)
    if folded != ("stages.0.0.conv1.body.weight" in own):
        raise ArchitectureMismatchError(
            f"the checkpoint is the authors' {'deployed' if folded else 'training-time'} DBB ResNet-18, the model is "
            f"not: build it with deploy={folded}", options={"deploy": folded})
    if folded:
        sd = dict(sd)
        eps = next(m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        for k in [k for k in sd if re.fullmatch(r"(stage0\.conv1|stage\d\.\d+\.shortcut)\.conv\.bias", k)]:
            _conv_bias_as_bn(sd, k[: -len(".bias")], k[: -len(".conv.bias")] + ".bn", eps)

    def branch(m: re.Match) -> str:
        rest = next((re.sub(p, r, m[4]) for p, r in _DBB_BRANCHES if re.fullmatch(p, m[4])), m[4])
        return f"stages.{int(m[1]) - 1}.{m[2]}.{m[3]}.body.{rest}"

    return rename_keys(sd, [
        (r"stage([1-9])\.(\d+)\.(conv[12])\.(dbb_.+)", branch),
        (r"stage0\.conv1\.(conv|bn)\.(.+)", r"stem.0.\1.\2"),
        (r"stage([1-9])\.(\d+)\.shortcut\.(conv|bn)\.(.+)", lambda m: f"stages.{int(m[1]) - 1}.{m[2]}.shortcut.{m[3]}.{m[4]}"),
        (r"linear\.(.+)", r"head.fc.\1"),
    ])


DBB = register_converter(Converter(
    name="authors.dbb", source="authors: DingXiaoH/DiverseBranchBlock", model_types=(ResNet,),
    detect=lambda keys: has_any(keys, r"stage1\.0\.conv1\.dbb_(origin|reparam)\..+"), convert=convert_dbb_resnet,
    models={"dbb_resnet18": "create_Res18 (switch_conv_bn_impl('DBB'))"},
    notes="renames (their branch names are ours); training and deployed forms (their deployed stem and shortcut "
          "biases become identity BNs; the model's deploy= must match)"))


# ------------------------------------------------------------------------------ ACNet ResNet-18 (DingXiaoH/ACNet)
def convert_acnet_resnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' ResNet-18 built by their ``ACNetBuilder`` (``base_model/resnet.py``): ``conv1`` (the stem's
    plain conv-BN-ReLU) is our ``stem.0``, ``stage<i>.<j>`` our ``stages.<i-1>.<j>``, ``linear`` our ``head.fc``;
    a block's ``conv1`` ACB sits in a Sequential (``conv1.acb``, then the ReLU), its ``conv2`` ACB does not.  An
    ACB's ``square_conv``/``square_bn``, ``ver_*``, ``hor_*`` are our ``body.square/ver/hor.conv/bn``; in the
    deployed form (``deploy=True`` in their builder, ``switch_to_deploy()``) its ``fused_conv`` is our ``body``
    (the model's deploy must match)."""
    folded = any(".fused_conv." in k for k in sd)
    if folded != ("stages.0.0.conv1.body.weight" in model.state_dict()):
        raise ArchitectureMismatchError(
            f"the checkpoint is ACNet's {'deployed' if folded else 'training'} form, the model is not: build it with "
            f"deploy={folded}", options={"deploy": folded})

    def acb(m: re.Match) -> str:
        part = m[4]
        if part.startswith("fused_conv."):
            part = "body." + part[len("fused_conv."):]
        else:
            part = re.sub(r"^(square|ver|hor)_(conv|bn)\.", r"body.\1.\2.", part)
        return f"stages.{int(m[1]) - 1}.{m[2]}.{m[3]}.{part}"

    return rename_keys(sd, [
        (r"conv1\.(conv|bn)\.(.+)", r"stem.0.\1.\2"),
        (r"stage([1-9])\.(\d+)\.(conv[12])\.(?:acb\.)?((?:square|ver|hor)_(?:conv|bn)\..+|fused_conv\..+)", acb),
        (r"stage([1-9])\.(\d+)\.shortcut\.(conv|bn)\.(.+)", lambda m: f"stages.{int(m[1]) - 1}.{m[2]}.shortcut.{m[3]}.{m[4]}"),
        (r"linear\.(.+)", r"head.fc.\1"),
    ])


ACNET = register_converter(Converter(
    name="authors.acnet", source="authors: DingXiaoH/ACNet", model_types=(ResNet,),
    detect=lambda keys: has_any(keys, r"stage1\.0\.conv1\.acb\.(square_conv|fused_conv)\.weight"),
    convert=convert_acnet_resnet,
    models={"acnet_resnet18": "base_model.resnet.create_ResNet18 (ACNetBuilder)"},
    notes="renames; training and deployed forms (the model's deploy= must match)"))


# ------------------------------------------------------------------------------------ RepMLPNet (DingXiaoH/RepMLP)
_REPMLP_UNIT = [
    (r"repmlp_block\.gp\.fc([12])\.(.+)", r"block.gp_fc\1.\2"),
    (r"repmlp_block\.(fc3|fc3_bn)\.(.+)", r"block.\1.\2"),
    (r"repmlp_block\.repconv(\d+)\.(.+)", r"block.local.conv\1.\2"),
    (r"ffn_block\.ffn_fc([12])\.(.+)", lambda m: f"ffn.{int(m[1]) - 1}.{m[2]}"),
]


def convert_repmlpnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' RepMLPNet (``repmlpnet.py``): ``conv_embedding``, ``stages.<s>.<b>`` and ``embeds.<s>`` (the
    downsampling between stages) are, in network order, our flat ``features.<i>``; in a unit ``repmlp_block.gp.fc1/2``
    is our ``block.gp_fc1/2``, ``repconv<k>`` our ``block.local.conv<k>``, ``ffn_block.ffn_fc1/2`` our ``ffn.0/1``;
    ``head_norm`` is our ``norm``, ``head`` our ``head.fc``.  Training and deployed (``locality_injection()``,
    ``fc3`` with a bias) forms; the model's deploy must match."""
    folded = any(k.endswith("repmlp_block.fc3.bias") for k in sd)
    if folded != any(k.endswith("block.fc3.bias") for k in model.state_dict()):
        raise ArchitectureMismatchError(
            f"the checkpoint is RepMLPNet's {'deployed (locality-injected)' if folded else 'training'} form, the model "
            f"is not: build it with deploy={folded}", options={"deploy": folded})
    counts = {}
    for k in sd:
        m = re.match(r"stages\.(\d+)\.(\d+)\.", k)
        if m:
            counts[int(m[1])] = max(counts.get(int(m[1]), 0), int(m[2]) + 1)
    starts, i = {}, 1
    for s_ in sorted(counts):
        starts[s_] = i
        i += counts[s_] + 1  # the stage's units, then its downsampling embed

    def unit(m: re.Match) -> str:
        rest = next((re.sub(p, r, m[3]) for p, r in _REPMLP_UNIT if re.fullmatch(p, m[3])), m[3])
        return f"features.{starts[int(m[1])] + int(m[2])}.{rest}"

    return rename_keys(sd, [
        (r"conv_embedding\.(.+)", r"features.0.\1"),
        (r"stages\.(\d+)\.(\d+)\.(.+)", unit),
        (r"embeds\.(\d+)\.(.+)", lambda m: f"features.{starts[int(m[1])] + counts[int(m[1])]}.{m[2]}"),
        (r"head_norm\.(.+)", r"norm.\1"),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    ])


REPMLPNET = register_converter(Converter(
    name="authors.repmlpnet", source="authors: DingXiaoH/RepMLP", model_types=(RepMLPNet,),
    detect=lambda keys: has_any(keys, r"stages\.0\.0\.repmlp_block\.fc3\.weight") and has_all(keys, "head_norm.weight"),
    convert=convert_repmlpnet, models={"repmlpnet_t224": "create_RepMLPNet_T224"},
    notes="renames (stages and embeds flattened into features); training and deployed forms"))


# ---------------------------------------------------------------------------------------- CoResNet (iduta/coconv)
def convert_coresnet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' CoResNet (``models/coresnet.py``, torchvision's ResNet keys, stride in the 3x3): a CoConv's
    levels ``conv2.conv2_<i>`` (dilation i) are our ``conv2.conv.levels.<i-1>``; a one-level stage's plain
    ``conv2`` is our one level.  Their ``bn_end_stage`` BN (after the addition) is the last block's ``bn3``, ours
    ``conv3.bn`` of the block built with ``bn_after_add``: same tensors."""
    own = model.state_dict()
    return rename_keys(sd, [
        (r"layer(\d+)\.(\d+)\.conv2\.conv2_(\d)\.weight", lambda m: f"{block_name(m)}.conv2.conv.levels.{int(m[3]) - 1}.weight"),
        (r"layer(\d+)\.(\d+)\.conv2\.weight",
         lambda m: _pick(own, f"{block_name(m)}.conv2.conv.levels.0.weight", f"{block_name(m)}.conv2.conv.weight")),
    ] + resnet_rules(sd, model))


CORESNET = register_converter(Converter(
    name="authors.coresnet", source="authors: iduta/coconv", model_types=(ResNet,),
    detect=lambda keys: has_any(keys, r"layer1\.0\.conv2\.conv2_1\.weight"), convert=convert_coresnet, priority=1,
    check=lambda model: check_stride_3x3(model, "The CoConv authors'"),
    models={"coconv_resnet50": "coresnet50"}, notes="renames (their CoConv levels conv2_<i> are our levels.<i-1>)"))


# ----------------------------------------------------------------------------------- EPSANet (murufeng/EPSANet)
def convert_epsanet(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' EPSANet (``models/epsanet.py``, torchvision's ResNet keys, stride on the PSA module): a PSA
    module's ``conv_<i>`` is our ``conv2.op.convs.<i-1>``, its shared ``se`` our ``conv2.op.se``.  Their module
    concatenates the S weighted branches in *reversed* order (``out = cat(branch_i, out)``: branch S first), ours
    in branch order, so the S channel blocks of the following ``bn2`` (our ``conv2.bn``) and of ``conv3``'s input
    channels are reversed here."""
    sd = dict(sd)
    for key in [k for k in sd if re.fullmatch(r"layer\d+\.\d+\.conv2\.conv_1\.weight", k)]:
        p = key[: -len(".conv2.conv_1.weight")]
        branches = sum(1 for k in sd if re.fullmatch(rf"{re.escape(p)}\.conv2\.conv_\d+\.weight", k))
        for name in ("weight", "bias", "running_mean", "running_var"):
            v = sd[f"{p}.bn2.{name}"]
            sd[f"{p}.bn2.{name}"] = v.reshape(branches, -1).flip(0).reshape(v.shape)
        w = sd[f"{p}.conv3.weight"]
        sd[f"{p}.conv3.weight"] = w.reshape(w.shape[0], branches, -1, *w.shape[2:]).flip(1).reshape(w.shape)
    return rename_keys(sd, [
        (r"layer(\d+)\.(\d+)\.conv2\.conv_(\d+)\.weight", lambda m: f"{block_name(m)}.conv2.op.convs.{int(m[3]) - 1}.weight"),
        (r"layer(\d+)\.(\d+)\.conv2\.se\.(.+)", lambda m: f"{block_name(m)}.conv2.op.se.{m[3]}"),
    ] + resnet_rules(sd, model))


EPSANET = register_converter(Converter(
    name="authors.epsanet", source="authors: murufeng/EPSANet", model_types=(ResNet,),
    detect=lambda keys: has_any(keys, r"layer1\.0\.conv2\.conv_1\.weight") and has_any(keys, r"layer1\.0\.conv2\.se\.fc1\.weight"),
    convert=convert_epsanet, priority=1, check=lambda model: check_stride_3x3(model, "The EPSANet authors'"),
    models={"epsanet50_small": "epsanet50"},
    notes="their reversed branch order (branch S first) undone: bn2's and conv3's input channel blocks reversed"))


# ----------------------------------------------------------------------- BAM ResNet-50 (Jongchan/attention-module)
from visionblocks.blocks.attention import BAM as _BAM  # noqa: E402

__all__ += ["BAM", "convert_bam"]

_BAM_UNITS = [  # inside one of their BAM modules -> inside ours (layout="authors"); the spatial final conv below
    (r"channel_att\.gate_c\.gate_c_fc_0\.(.+)", r"channel_gate.mlp.0.conv.\1"),
    (r"channel_att\.gate_c\.gate_c_bn_1\.(.+)", r"channel_gate.mlp.0.bn.\1"),
    (r"channel_att\.gate_c\.gate_c_fc_final\.(.+)", r"channel_gate.mlp.1.\1"),
    (r"spatial_att\.gate_s\.gate_s_conv_reduce0\.(.+)", r"spatial_gate.body.0.conv.\1"),
    (r"spatial_att\.gate_s\.gate_s_bn_reduce0\.(.+)", r"spatial_gate.body.0.bn.\1"),
    (r"spatial_att\.gate_s\.gate_s_(conv|bn)_di_(\d+)\.(.+)", lambda m: f"spatial_gate.body.{int(m[2]) + 1}.{m[1]}.{m[3]}"),
]


def _check_bam(model: torch.nn.Module) -> None:
    check_stride_3x3(model, "The BAM authors'")
    bams = [m for m in model.modules() if isinstance(m, _BAM)]
    if not bams:
        raise ArchitectureMismatchError(
            "the checkpoint is the BAM authors' ResNet (a BAM module after each of the first three stages); the "
            "model has no BAM: use bam_resnet50 (or stage_attn='bam'), with stride_3x3=True and "
            "stage_attn_kwargs={'layout': 'authors'}", options={"stage_attn": "bam", "stride_3x3": True,
                                                                 "stage_attn_kwargs": {"layout": "authors"}})
    if any((m.layout, m.combine) != ("authors", "mul") for m in bams):
        raise ArchitectureMismatchError(
            "the checkpoint is the BAM authors' network (BN on the channel MLP's hidden layer, biased convolutions, "
            "no final spatial BN, the two maps multiplied): build the model's BAM with layout='authors' (and "
            "combine='mul', its default there): stage_attn_kwargs={'layout': 'authors'}",
            options={"stage_attn_kwargs": {"layout": "authors"}})


def convert_bam(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' BAM-ResNet (``MODELS/model_resnet.py`` with ``att_type='BAM'``: torchvision-style ResNet keys,
    stride in the 3x3): their ``bam<k>`` (after ``layer<k>``, k = 1..3) is our stage attention
    ``stages.<k-1>.<n>`` (n: the stage's number of blocks), a BAM built with ``layout="authors"``.  Inside it,
    their ``channel_att.gate_c`` linears ``gate_c_fc_0``/``gate_c_fc_final`` (as 1x1 convolutions) and hidden
    ``gate_c_bn_1`` are our ``channel_gate.mlp.0.conv``/``mlp.1`` and ``mlp.0.bn``; their ``spatial_att.gate_s``
    ``conv/bn_reduce0``, ``conv/bn_di_<i>`` and ``conv_final`` are our ``spatial_gate.body.0``, ``body.<i+1>`` and
    the last ``body`` convolution.  Their BAM computes ``(1 + sigmoid(Mc * Ms)) * F`` (ours with the default
    ``combine`` of that layout, ``"mul"``) and pools the channel branch with an H x H window: the same function as
    ours on square inputs only (their ImageNet network runs at 224 x 224)."""
    own = model.state_dict()
    blocks = {}  # their stage k -> number of residual blocks
    for k in sd:
        if m := re.match(r"layer(\d+)\.(\d+)\.", k):
            blocks[int(m[1])] = max(blocks.get(int(m[1]), 0), int(m[2]) + 1)
    dilated: dict[int, set] = {}
    for k in sd:
        if m := re.match(r"bam(\d+)\.spatial_att\.gate_s\.gate_s_conv_di_(\d+)\.", k):
            dilated.setdefault(int(m[1]), set()).add(int(m[2]))

    def bam(m: re.Match) -> str:
        k, rest = int(m[1]), m[2]
        where = f"stages.{k - 1}.{blocks.get(k, 0)}"
        if fm := re.fullmatch(r"spatial_att\.gate_s\.gate_s_conv_final\.(.+)", rest):
            return f"{where}.spatial_gate.body.{len(dilated.get(k, ())) + 1}.{fm[1]}"
        return f"{where}." + next((re.sub(p, r, rest) for p, r in _BAM_UNITS if re.fullmatch(p, rest)), rest)

    out = rename_keys(sd, [(r"bam(\d+)\.(.+)", bam)] + resnet_rules(sd, model))
    return linears_to_1x1(out, own)


BAM = register_converter(Converter(
    name="authors.bam", source="authors: Jongchan/attention-module", model_types=(ResNet,),
    detect=lambda keys: has_any(keys, r"bam1\.channel_att\.gate_c\.gate_c_fc_0\.weight"), convert=convert_bam,
    check=_check_bam, priority=1,
    models={"bam_resnet50": "ResidualNet('ImageNet', 50, 1000, 'BAM')"},
    notes="bam<k> -> the stage attention after stage k; linears as 1x1 convolutions; needs stride_3x3=True and "
          "stage_attn_kwargs={'layout': 'authors'} (their BAM: BN on the channel MLP's hidden layer, biased "
          "convolutions, no final spatial BN, the maps multiplied)"))
