"""Converters from the papers' authors' own layouts for the token, attention and other models (their released
checkpoints): GFNet, ResT, ViP, sMLPNet, CoTNet, RedNet, ParNet, MobileViT and MobileViTv2.

Each converter names the repository; the commit its harness case was verified at is in its manifest and in
docs/weights.md.  Nothing of the authors' code is here: only which of their tensors is which of ours.
"""
from __future__ import annotations

import re

import torch
import torch.nn as nn

from visionblocks.models.gfnet import GFNet
from visionblocks.models.mobilevit import MobileViT
from visionblocks.models.parnet import ParNet
from visionblocks.models.resnet import ResNet
from visionblocks.models.rest import ResT
from visionblocks.models.smlpnet import SMLPNet
from visionblocks.models.vip import VisionPermutator

from ._common import has_all
from .convert import Converter, register_converter, rename_keys
from .errors import ArchitectureMismatchError
from .torchvision import block_name, resnet_rules

__all__ = ["GFNET", "convert_gfnet", "REST", "convert_rest", "VIP", "convert_vip", "SMLPNET", "convert_smlpnet",
           "COTNET", "convert_cotnet", "REDNET", "convert_rednet", "PARNET", "convert_parnet", "MOBILEVIT",
           "convert_mobilevit"]

StateDict = dict[str, torch.Tensor]


# -------------------------------------------------------------------------------- GFNet (raoyongming/GFNet)
def convert_gfnet(sd: StateDict, model: torch.nn.Module) -> StateDict:
    """The authors' isotropic GFNet (``gfnet.py``, class ``GFNet``): ``patch_embed.proj`` is our ``patch_embed``
    convolution and ``head`` our ``head.fc``; blocks, filters (``complex_weight``, (h, w, C, 2)), position
    embedding and norms keep their names."""
    return rename_keys(sd, [
        (r"patch_embed\.proj\.(weight|bias)", r"patch_embed.\1"),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    ])


GFNET = register_converter(Converter(
    name="authors.gfnet", source="authors: raoyongming/GFNet", model_types=(GFNet,),
    detect=lambda keys: has_all(keys, "patch_embed.proj.weight", "blocks.0.filter.complex_weight"),
    convert=convert_gfnet,
    models={"gfnet_ti": "GFNet(embed_dim=256, depth=12)", "gfnet_xs": "GFNet(embed_dim=384, depth=12)",
            "gfnet_s": "GFNet(embed_dim=384, depth=19)"},
    notes="renames (isotropic GFNet; the hierarchical GFNet-H models have no counterpart here)"))


# ------------------------------------------------------------------------------------ ResT (wofmanaf/ResT)
def convert_rest(sd: StateDict, model: torch.nn.Module) -> StateDict:
    """The authors' ResT (``models/rest.py``) with the paper's stem, their ``Stem`` class (conv7x7/2-BN-ReLU +
    maxpool): ``stem.conv``/``stem.norm`` are our ``stages.0.embed.0.conv``/``.bn``, ``patch_embed_<k>.conv``/
    ``.norm`` our ``stages.<k-1>.embed.conv``/``.bn``, the pixel attentions ``<embed>.pos.pa_conv`` our
    ``stages.<i>.pos.conv``, ``stage<k>.<j>`` our ``stages.<k-1>.blocks.<j>`` (EMSA and MLP names kept), ``head``
    our ``head.fc``.

    Their repository's ``rest_*`` functions build ``BasicStem`` (three 3x3 convolutions: ``stem.conv1/norm1``,
    ``conv2/norm2``, ``conv3``), our ``ResT(stem="basic")`` (``stages.0.embed.0/1/2``); the paper's counts are those
    of ``Stem``, our default.  The checkpoint's stem must be the model's: otherwise the error names ``stem=``."""
    basic_ckpt = any(k.startswith("stem.conv1.") for k in sd)
    basic_model = model.stages[0].embed[0].conv.kernel_size == (3, 3)
    if basic_ckpt != basic_model:
        want = "basic" if basic_ckpt else "conv7x7"
        raise ArchitectureMismatchError(
            f"the checkpoint is of the authors' ResT with their {'BasicStem (stem.conv1/2/3)' if basic_ckpt else 'Stem (conv7x7 + maxpool)'}, "
            f"the model's stem is not: build it with stem={want!r}", options={"stem": want})
    return rename_keys(sd, [
        (r"stem\.pos\.pa_conv\.(.+)", r"stages.0.pos.conv.\1"),
        (r"stem\.conv\.(.+)", r"stages.0.embed.0.conv.\1"),
        (r"stem\.conv([12])\.(.+)", lambda m: f"stages.0.embed.{int(m[1]) - 1}.conv.{m[2]}"),
        (r"stem\.norm([12])\.(.+)", lambda m: f"stages.0.embed.{int(m[1]) - 1}.bn.{m[2]}"),
        (r"stem\.conv3\.(.+)", r"stages.0.embed.2.\1"),
        (r"stem\.norm\.(.+)", r"stages.0.embed.0.bn.\1"),
        (r"patch_embed_(\d)\.pos\.pa_conv\.(.+)", lambda m: f"stages.{int(m[1]) - 1}.pos.conv.{m[2]}"),
        (r"patch_embed_(\d)\.conv\.(.+)", lambda m: f"stages.{int(m[1]) - 1}.embed.conv.{m[2]}"),
        (r"patch_embed_(\d)\.norm\.(.+)", lambda m: f"stages.{int(m[1]) - 1}.embed.bn.{m[2]}"),
        (r"stage(\d)\.(\d+)\.(.+)", lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.{m[3]}"),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    ])


REST = register_converter(Converter(
    name="authors.rest", source="authors: wofmanaf/ResT", model_types=(ResT,),
    detect=lambda keys: has_all(keys, "patch_embed_2.conv.weight", "stage1.0.attn.q.weight"), convert=convert_rest,
    models={"rest_lite": "rest_lite", "rest_small": "rest_small", "rest_base": "rest_base"},
    notes="renames; their Stem (conv7x7, our default) or their BasicStem (our stem='basic'); the model's stem must match"))


# ------------------------------------------------------------------ ViP (Andrew-Qibin/VisionPermutator)
def convert_vip(sd: StateDict, model: torch.nn.Module) -> StateDict:
    """The authors' Vision Permutator (``models/vip.py``): ``patch_embed.proj`` is our ``stem``, ``network.<i>``
    (block sequences and the ``Downsample`` convolutions between them, in the same order) our ``stages.<i>``,
    ``head`` our ``head.fc``; the permute-MLP's ``mlp_h``/``mlp_w``/``mlp_c``/``reweight``/``proj`` keep their
    names (their segment number equals the token grid's side, as ours)."""
    return rename_keys(sd, [
        (r"patch_embed\.proj\.(weight|bias)", r"stem.\1"),
        (r"network\.(.+)", r"stages.\1"),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    ])


VIP = register_converter(Converter(
    name="authors.vip", source="authors: Andrew-Qibin/VisionPermutator", model_types=(VisionPermutator,),
    detect=lambda keys: has_all(keys, "patch_embed.proj.weight", "network.0.0.attn.mlp_h.weight"),
    convert=convert_vip, models={"vip_s7": "vip_s7"}, notes="renames"))


# ----------------------------------------------------------------------------- sMLPNet (microsoft/SPACH)
_SMLP_NAMES = {"0.conv_merge.BN": "dw_norm", "0.conv_merge.Conv": "dw", "1.BN": "smlp.norm", "1.fuse": "smlp.fuse",
               "1.proj_h": "smlp.proj_w", "1.proh_w": "smlp.proj_h"}  # token_mix.<b>.<name> -> ours (swapped H/W)
_SMLP_MIX = {"1": "norm", "2.net.0": "mlp.fc1", "2.net.3": "mlp.fc2"}  # channel_mix.<b>.<name> -> ours


def convert_smlpnet(sd: StateDict, model: torch.nn.Module) -> StateDict:
    """The authors' sMLPNet (``models/smlp.py``): ``to_patch_embedding.<i>.0`` are the convolutions of our
    ``features`` (the patch embedding and the 2x2 mergings), ``token_mix.<b>``/``channel_mix.<b>`` (the b-th
    block) our ``features.<k>`` blocks in order, ``batch_norm`` our ``norm``, ``mlp_head.0`` our ``head.fc``.

    Their sMLP block's H/W naming is swapped (it asserts H == W, so it never shows): ``proj_h`` acts on
    ``x.permute(0, 3, 1, 2)``, mixing along W, and ``proh_w`` (sic) along H; they concatenate ``[x, x_h, x_w]``
    with their names.  So their ``proj_h`` is our ``proj_w`` and their ``proh_w`` our ``proj_h`` (1x1 convolution
    kernels (S, S, 1, 1) -> linear (S, S)), and the fuse's 2nd and 3rd blocks of C input channels are swapped."""
    convs = [i for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)]
    blocks = [i for i, m in enumerate(model.features) if not isinstance(m, nn.Conv2d)]
    sd = dict(sd)
    for k, v in list(sd.items()):
        if re.fullmatch(r"token_mix\.\d+\.1\.(proj_h|proh_w)\.weight", k) and v.ndim == 4 and v.shape[2:] == (1, 1):
            sd[k] = v[:, :, 0, 0]
        elif re.fullmatch(r"token_mix\.\d+\.1\.fuse\.weight", k) and v.ndim == 4 and v.shape[1] % 3 == 0:
            c = v.shape[1] // 3
            sd[k] = torch.cat([v[:, :c], v[:, 2 * c:], v[:, c:2 * c]], dim=1)  # [x, x_W, x_H] -> [x, x_H, x_W]

    def at(index, positions):
        i = int(index)
        return f"features.{positions[i]}" if i < len(positions) else f"features.?{index}"

    return rename_keys(sd, [
        (r"to_patch_embedding\.(\d+)\.0\.weight", lambda m: f"{at(m[1], convs)}.weight"),
        (r"token_mix\.(\d+)\.(0\.conv_merge\.BN|0\.conv_merge\.Conv|1\.BN|1\.fuse|1\.proj_h|1\.proh_w)\.(.+)",
         lambda m: f"{at(m[1], blocks)}.{_SMLP_NAMES[m[2]]}.{m[3]}"),
        (r"channel_mix\.(\d+)\.(1|2\.net\.0|2\.net\.3)\.(.+)",
         lambda m: f"{at(m[1], blocks)}.{_SMLP_MIX[m[2]]}.{m[3]}"),
        (r"batch_norm\.(.+)", r"norm.\1"),
        (r"mlp_head\.0\.(weight|bias)", r"head.fc.\1"),
    ])


SMLPNET = register_converter(Converter(
    name="authors.smlpnet", source="authors: microsoft/SPACH", model_types=(SMLPNet,),
    detect=lambda keys: has_all(keys, "to_patch_embedding.0.0.weight", "token_mix.0.1.proh_w.weight"),
    convert=convert_smlpnet,
    models={"smlpnet_t": "smlpnet_tiny", "smlpnet_s": "smlpnet_small", "smlpnet_b": "smlpnet_base"},
    notes="their swapped H/W projections: proj_h -> our proj_w, proh_w -> our proj_h, the fuse's input blocks "
          "[x, x_W, x_H] -> [x, x_H, x_W]; 1x1 kernels as linears; flat block lists -> our features"))


# ------------------------------------------------------------------------------------ CoTNet (JDAI-CV/CoTNet)
_COT = {"key_embed.0": "key_embed.conv", "key_embed.1": "key_embed.bn", "embed.0": "attn_embed.0.conv",
        "embed.1": "attn_embed.0.bn", "embed.3": "attn_embed.1.conv", "embed.4": "attn_embed.1.bn",
        "conv1x1.0": "value_embed.conv", "conv1x1.1": "value_embed.bn", "bn": "bn", "se.0": "fuse.0.conv",
        "se.1": "fuse.0.bn", "se.3": "fuse.1"}  # their CotLayer's modules -> our ContextualTransformer's


def convert_cotnet(sd: StateDict, model: torch.nn.Module) -> StateDict:
    """The authors' CoTNet-50 (``models/cotnet.py``, on their timm fork's ResNet: torchvision-style keys): the
    bottleneck's ``conv2`` is their ``CotLayer``, our ``conv2`` CoT block (behind the stride-2 average pool of a
    downsampling block, ``conv2.1``); inside it ``key_embed``, ``embed`` (our ``attn_embed``), ``conv1x1`` (our
    ``value_embed``), ``bn`` and ``se`` (our ``fuse``) map one to one."""
    own = model.state_dict()

    def cot(m):
        b = block_name(m)
        unit = f"{b}.conv2.1" if any(k.startswith(f"{b}.conv2.1.") for k in own) else f"{b}.conv2"
        return f"{unit}.{_COT[m[3]]}.{m[4]}"

    names = "|".join(n.replace(".", "\\.") for n in _COT)
    return rename_keys(sd, [(rf"layer(\d+)\.(\d+)\.conv2\.({names})\.(.+)", cot)] + resnet_rules(sd, model))


COTNET = register_converter(Converter(
    name="authors.cotnet", source="authors: JDAI-CV/CoTNet", model_types=(ResNet,),
    detect=lambda keys: has_all(keys, "layer1.0.conv2.key_embed.0.weight", "layer1.0.conv2.embed.3.weight"),
    convert=convert_cotnet, priority=1, models={"cotnet50": "cotnet50"},
    notes="renames (their CoT layer's Sequential indices -> our named units)"))


# ---------------------------------------------------------------------------------- RedNet (d-li14/involution)
def convert_rednet(sd: StateDict, model: torch.nn.Module) -> StateDict:
    """The authors' RedNet (mmcls ``ImageClassifier``: ``backbone.*`` = their ``RedNet`` backbone, ``head.fc`` the
    linear classifier after global average pooling).  Their involution's ``conv1`` (ConvModule: ``conv``, ``bn``)
    and ``conv2`` (``conv`` with bias) are our involution's ``reduce`` and ``span``; the stem's ``0``/``1``/``2``/``4``
    (conv module, involution, BN, conv module) are our ``stem.0``, ``stem.1.conv``, ``stem.1.bn`` and ``stem.2``; the
    residual layers have torchvision's names (``bn2`` follows the involution, which carries the stride)."""
    sd = {k[len("backbone."):] if k.startswith("backbone.") else k: v for k, v in sd.items()}
    inv = r"conv1\.(conv|bn)\.(.+)|conv2\.conv\.(.+)"

    def involution(prefix: str, m: re.Match) -> str:
        return f"{prefix}.reduce.{m[1]}.{m[2]}" if m[1] else f"{prefix}.span.{m[3]}"

    def block_inv(m):
        return involution(f"{block_name(m)}.conv2.conv", re.fullmatch(inv, m[3]))

    out = rename_keys(sd, [
        (r"stem\.0\.(conv|bn)\.(.+)", r"stem.0.\1.\2"),
        (r"stem\.1\.(.+)", lambda m: involution("stem.1.conv", re.fullmatch(inv, m[1])) if re.fullmatch(inv, m[1])
         else f"stem.1.?{m[1]}"),
        (r"stem\.2\.(.+)", r"stem.1.bn.\1"),
        (r"stem\.4\.(conv|bn)\.(.+)", r"stem.2.\1.\2"),
        (rf"layer(\d+)\.(\d+)\.conv2\.((?:{inv}))", block_inv),
    ])
    return rename_keys(out, resnet_rules(out, model))


REDNET = register_converter(Converter(
    name="authors.rednet", source="authors: d-li14/involution (mmcls)", model_types=(ResNet,),
    detect=lambda keys: has_all(keys, "backbone.stem.1.conv1.conv.weight", "backbone.layer1.0.conv2.conv2.conv.weight"),
    convert=convert_rednet, priority=1,
    models={"rednet26": "RedNet(depth=26)", "rednet38": "RedNet(depth=38)", "rednet50": "RedNet(depth=50)"},
    notes="renames (mmcls classifier: backbone.* and head.fc; involution conv1/conv2 -> reduce/span)"))


# ------------------------------------------------------------------------- ParNet (imankgoyal/NonDeepNetworks)
_PARNET_UNITS = [(r"inits\.0\.([01])", r"down1.\1"), (r"inits\.1", "down2"), (r"inits\.2", "down3"),
                 (r"streams\.(\d+)\.(\d+)", r"streams.\1.\2"), (r"downsamples_2\.0", "fuse12"),
                 (r"downsamples_2\.1\.2", "fuse2.block"), (r"combine\.2", "fuse3.block"), (r"combine\.3", "final")]
_PARNET_PARTS = [(r"rbr_dense\.(conv|bn)\.(.+)", r"conv.body.conv3x3.\1.\2"),
                 (r"rbr_1x1\.(?:1\.)?(conv|bn)\.(.+)", r"conv.body.conv1x1.\1.\2"),
                 (r"rbr_identity\.(.+)", r"skip_bn.\1")]


def convert_parnet(sd: StateDict, model: torch.nn.Module) -> StateDict:
    """The authors' ParNet (``SimpNet`` in ``imagenet/timm/models/simplenet_impl/simpnet.py``): ``inits`` are our
    ``down1``/``down2``/``down3``, ``streams`` ours, ``downsamples_2.0`` our ``fuse12``, ``downsamples_2.1`` and
    ``combine.0..2`` our ``fuse2``/``fuse3`` (``b1``/``b2`` their BNs of the stream and of the running fusion,
    our ``bn_a``/``bn_b``), ``combine.3`` our ``final``.  Inside a RepVGG-style block (``block.``):
    ``rbr_dense``/``rbr_1x1`` (after the stride's average pool: ``rbr_1x1.1``) are our 3x3/1x1 branches,
    ``rbr_identity`` our ``skip_bn``, and ``se.cvsig.conv`` our ``sse_fc`` (stream blocks) or ``se_fc``
    (downsampling blocks).

    Their widths must be the model's: their ParNet-S has 92 channels in stream 1 where our ``parnet_s`` (the
    paper's table) has 96; such a checkpoint is refused naming the widths (``ParNet(widths, out_features)`` builds
    it: verified exact against their code)."""
    own = model.state_dict()
    theirs = [f"inits.{i}.block.rbr_dense.conv.weight" for i in ("0.1", "1", "2")]
    ours = [f"{u}.conv.body.conv3x3.conv.weight" for u in ("down1.1", "down2", "down3")]
    if all(k in sd for k in theirs) and all(k in own for k in ours):
        widths = tuple(int(sd[k].shape[0]) for k in theirs)
        mine = tuple(int(own[k].shape[0]) for k in ours)
        if widths != mine:
            raise ArchitectureMismatchError(
                f"the checkpoint is a ParNet with stream widths {widths}, the model's are {mine}: build "
                f"visionblocks.models.parnet.ParNet({widths}, out_features) (their ParNet-S has 92 stream-1 "
                f"channels, our parnet_s the paper's 96)", options={"widths": widths})
    units = [(re.compile(p), r) for p, r in _PARNET_UNITS]
    parts = [(re.compile(p), r) for p, r in _PARNET_PARTS]

    def block(m):
        unit = next((pat.fullmatch(m[1]).expand(rep) for pat, rep in units if pat.fullmatch(m[1])), f"?{m[1]}")
        rest = m[2]
        if rest == "se.cvsig.conv.weight":
            return _first_of(own, f"{unit}.sse_fc.weight", f"{unit}.se_fc.weight")
        part = next((pat.fullmatch(rest).expand(rep) for pat, rep in parts if pat.fullmatch(rest)), rest)
        return f"{unit}.{part}"

    return rename_keys(sd, [
        (r"(.+?)\.block\.(.+)", block),
        (r"downsamples_2\.1\.0\.b([12])\.(.+)", lambda m: f"fuse2.bn_{'ab'[int(m[1]) - 1]}.{m[2]}"),
        (r"combine\.0\.b([12])\.(.+)", lambda m: f"fuse3.bn_{'ab'[int(m[1]) - 1]}.{m[2]}"),
    ])


def _first_of(own: StateDict, *names: str) -> str:
    return next((n for n in names if n in own), names[0])


PARNET = register_converter(Converter(
    name="authors.parnet", source="authors: imankgoyal/NonDeepNetworks", model_types=(ParNet,),
    detect=lambda keys: has_all(keys, "inits.0.0.block.rbr_dense.conv.weight", "combine.3.block.rbr_dense.conv.weight"),
    convert=convert_parnet,
    models={"parnet_m": "SimpNet(planes=[128, 256, 512, 2048], num_blocks=[5, 6, 6, 1])",
            "parnet_l": "SimpNet(planes=[160, 320, 640, 2560], num_blocks=[5, 6, 6, 1])"},
    notes="renames (their ParNet-S has 92 stream-1 channels, ours 96 as the paper's table: not loadable yet)"))


# ------------------------------------------------------------------------------- MobileViT (apple/ml-cvnets)
_CVNETS_IR = {"exp_1x1": "conv_pw", "conv_3x3": "conv_dw", "red_1x1": "conv_pwl"}
_CVNETS_MHA = {"pre_norm_mha.0": "norm1", "pre_norm_mha.1.qkv_proj": "attn.qkv", "pre_norm_mha.1.out_proj": "attn.proj",
               "pre_norm_ffn.0": "norm2", "pre_norm_ffn.1": "ffn.fc1", "pre_norm_ffn.4": "ffn.fc2",
               # MobileViTv2 (separable linear attention and FFN as 1x1 conv layers)
               "pre_norm_attn.0": "norm1", "pre_norm_attn.1.qkv_proj.block.conv": "attn.qkv",
               "pre_norm_attn.1.out_proj.block.conv": "attn.proj", "pre_norm_ffn.1.block.conv": "ffn.fc1",
               "pre_norm_ffn.3.block.conv": "ffn.fc2"}


def _cvnets_norm(name: str) -> str:
    return "bn" if name == "norm" else name


def convert_mobilevit(sd: StateDict, model: torch.nn.Module) -> StateDict:
    """The authors' MobileViT (v1) of ml-cvnets (``cvnets/models/classification/mobilevit.py``): their conv layers
    ``<name>.block.conv``/``.block.norm`` are our conv-BN units ``.conv``/``.bn``; ``conv_1`` is our ``stem``,
    ``layer_<i>.<j>`` our ``stages.<i-1>.<j>`` (inverted residuals ``exp_1x1``/``conv_3x3``/``red_1x1`` = our
    ``conv_pw``/``conv_dw``/``conv_pwl``; MobileViT blocks' ``local_rep.conv_3x3``/``local_rep.conv_1x1`` = our
    ``conv_kxk``/``conv_1x1_in``, ``global_rep.<k>`` our ``layers.<k>`` (pre-norm attention ``qkv_proj``/``out_proj``
    = ``attn.qkv``/``attn.proj``, FFN ``1``/``4`` = ``ffn.fc1``/``fc2``) and its last entry, the LayerNorm, our
    ``norm``; ``conv_proj`` and ``fusion`` = ``conv_proj`` and ``conv_fusion``), ``conv_1x1_exp`` our
    ``final_conv``, ``classifier.fc`` our ``head.fc``.

    MobileViTv2 (``mobilevit_v2.py``): ``local_rep.0``/``.1`` are our ``conv_kxk``/``conv_1x1_in``, the pre-norm
    separable attention's ``qkv_proj``/``out_proj`` and the FFN's ``1``/``3`` (1x1 conv layers) our ``attn.qkv``/
    ``attn.proj`` and ``ffn.fc1``/``fc2``, ``classifier.1`` our ``head.fc``."""
    def stage(m):
        return f"stages.{int(m[1]) - 1}.{m[2]}"

    def mha(m):
        return f"{stage(m)}.layers.{m[3]}.{_CVNETS_MHA[m[4]]}.{m[5]}"

    mha_names = "|".join(n.replace(".", "\\.") for n in sorted(_CVNETS_MHA, key=len, reverse=True))
    return rename_keys(sd, [
        (r"conv_1\.block\.(conv|norm)\.(.+)", lambda m: f"stem.{_cvnets_norm(m[1])}.{m[2]}"),
        (r"layer_(\d)\.(\d+)\.block\.(exp_1x1|conv_3x3|red_1x1)\.block\.(conv|norm)\.(.+)",
         lambda m: f"{stage(m)}.{_CVNETS_IR[m[3]]}.{_cvnets_norm(m[4])}.{m[5]}"),
        (r"layer_(\d)\.(\d+)\.local_rep\.conv_3x3\.block\.(conv|norm)\.(.+)",
         lambda m: f"{stage(m)}.conv_kxk.{_cvnets_norm(m[3])}.{m[4]}"),
        (r"layer_(\d)\.(\d+)\.local_rep\.conv_1x1\.block\.conv\.(.+)", lambda m: f"{stage(m)}.conv_1x1_in.{m[3]}"),
        (r"layer_(\d)\.(\d+)\.local_rep\.0\.block\.(conv|norm)\.(.+)",
         lambda m: f"{stage(m)}.conv_kxk.{_cvnets_norm(m[3])}.{m[4]}"),
        (r"layer_(\d)\.(\d+)\.local_rep\.1\.block\.conv\.(.+)", lambda m: f"{stage(m)}.conv_1x1_in.{m[3]}"),
        (rf"layer_(\d)\.(\d+)\.global_rep\.(\d+)\.({mha_names})\.(.+)", mha),
        (r"layer_(\d)\.(\d+)\.global_rep\.\d+\.(weight|bias)", lambda m: f"{stage(m)}.norm.{m[3]}"),
        (r"layer_(\d)\.(\d+)\.(conv_proj|fusion)\.block\.(conv|norm)\.(.+)",
         lambda m: f"{stage(m)}.{'conv_fusion' if m[3] == 'fusion' else m[3]}.{_cvnets_norm(m[4])}.{m[5]}"),
        (r"conv_1x1_exp\.block\.(conv|norm)\.(.+)", lambda m: f"final_conv.{_cvnets_norm(m[1])}.{m[2]}"),
        (r"classifier\.(?:fc|1)\.(weight|bias)", r"head.fc.\1"),
    ])


MOBILEVIT = register_converter(Converter(
    name="authors.mobilevit", source="authors: apple/ml-cvnets", model_types=(MobileViT,),
    detect=lambda keys: has_all(keys, "conv_1.block.conv.weight", "layer_1.0.block.red_1x1.block.conv.weight"),
    convert=convert_mobilevit,
    models={"mobilevit_xxs": "mobilevit (mode xx_small)", "mobilevit_xs": "mobilevit (mode x_small)",
            "mobilevit_s": "mobilevit (mode small)", "mobilevitv2_050": "mobilevit_v2 (width 0.5)",
            "mobilevitv2_100": "mobilevit_v2 (width 1.0)", "mobilevitv2_200": "mobilevit_v2 (width 2.0)"},
    notes="renames (MobileViT and MobileViTv2)"))
