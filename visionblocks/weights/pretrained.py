"""Published checkpoints by name: where each one is, which layout it is in, and how our model must be built.

Asking for weights by name (``create_pretrained("resnet50", "tv_in1k")`` or ``"resnet50.tv_in1k"``) builds the
model in the checkpoint's configuration (e.g. ``stride_3x3=True`` for torchvision's "ResNet v1.5") before
loading; a path or URL loads into the model as configured by the caller, and a configuration mismatch is refused
naming the option to set.  ``top1`` is the source's reported ImageNet-1k top-1 accuracy as the source states it
(``top1_note`` says where and at which resolution); it was not re-measured here.
"""
from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch.nn as nn

from ._io import is_url
from .errors import ArchitectureMismatchError, CheckpointError

__all__ = ["PretrainedWeights", "register_weights", "list_weights", "get_weights", "create_pretrained"]


@dataclass(frozen=True)
class PretrainedWeights:
    """One published checkpoint of one of our models.

    ``model`` is our registry name, ``tag`` the weights' name (``"<model>.<tag>"`` names them), ``url`` where the
    file is, ``layout`` the converter that reads it, ``kwargs`` the configuration our model needs for it,
    ``sha256`` the file's digest (or the prefix the source publishes), ``source``/``source_name`` the publisher
    and its name for the network.  ``url=None`` with a ``page``: the file must be downloaded by hand from there,
    then loaded by path.
    """

    model: str
    tag: str
    url: str | None
    layout: str
    source: str
    source_name: str
    kwargs: Mapping = field(default_factory=dict)
    sha256: str | None = None
    file_name: str | None = None
    top1: float | None = None
    top1_note: str = ""
    num_classes: int = 1000
    default: bool = False
    page: str = ""  # where to download the file by hand, when it has no direct URL (e.g. a Google Drive link)

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"


_WEIGHTS: dict[str, PretrainedWeights] = {}


def register_weights(w: PretrainedWeights) -> PretrainedWeights:
    if w.name in _WEIGHTS and _WEIGHTS[w.name] != w:
        raise ValueError(f"weights {w.name!r} are already registered")
    _WEIGHTS[w.name] = w
    return w


def list_weights(model: str | None = None) -> list[str]:
    """Names (``"<model>.<tag>"``) of the registered checkpoints, of one model when given."""
    return [n for n, w in _WEIGHTS.items() if model is None or w.model == model]


def get_weights(model: str, tag: str | None = None) -> PretrainedWeights:
    """The checkpoint ``tag`` of ``model`` (its default one when ``tag`` is None)."""
    entries = [w for w in _WEIGHTS.values() if w.model == model]
    if not entries:
        raise CheckpointError(f"no published weights are registered for {model!r} (see visionblocks.weights."
                              f"list_weights()); pass a path or URL instead")
    if tag is None:
        return next((w for w in entries if w.default), entries[0])
    for w in entries:
        if w.tag == tag:
            return w
    raise CheckpointError(f"unknown weights {tag!r} for {model!r}; known: {', '.join(w.tag for w in entries)}")


_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".tar", ".ckpt", ".pkl")


def _is_tag(model: str, x) -> bool:
    return isinstance(x, str) and any(w.model == model and w.tag == x for w in _WEIGHTS.values())


def create_pretrained(name: str, pretrained=True, *, strict: bool = True, sha256: str | None = None,
                      return_result: bool = False, features: Mapping | None = None, **kwargs) -> nn.Module:
    """``create_model(name, **kwargs)`` with weights loaded.

    ``pretrained``: ``True`` (the model's default published weights), a weights tag (``"tv_in1k"``; or give it
    in the name, ``"resnet50.tv_in1k"``), or a path/URL/state dict (loaded into the model as ``kwargs`` build
    it).  ``features``: the :class:`~visionblocks.features.FeatureListNet` arguments (``out_indices``,
    ``output_fmt``) to return a feature extractor instead; the weights then come from the whole network's
    checkpoint (published, or any of ours or a converter's layout), or from a feature extractor's own
    checkpoint (``extractor.state_dict()``, which lacks the parts it pruned).  ``return_result=True`` returns
    ``(model, LoadResult)``.
    """
    from visionblocks.features import FeatureListNet
    from visionblocks.registry import create_model, model_info

    from . import load_checkpoint, read_checkpoint
    from .load import holds_every_key

    model_name, _, tag = name.partition(".")
    model_name = model_info(model_name).name
    by_name = bool(tag) or pretrained is True or _is_tag(model_name, pretrained)
    if by_name:
        if tag and pretrained not in (True, None, tag):
            raise ValueError(f"weights given twice: {name!r} and pretrained={pretrained!r}")
        w = get_weights(model_name, tag or (pretrained if isinstance(pretrained, str) else None))
        conflicts = {k: v for k, v in kwargs.items() if k in w.kwargs and v != w.kwargs[k]}
        if conflicts:
            raise ArchitectureMismatchError(f"the {w.name} weights are for {model_name}({', '.join(f'{k}={v!r}' for k, v in w.kwargs.items())}); "
                                            f"got {conflicts}", options=dict(w.kwargs))
        if w.url is None:
            raise CheckpointError(f"the {w.name} weights have no direct download URL: download the file from {w.page} "
                                  f"and load it by path: create_pretrained({model_name!r}, '/path/to/file', "
                                  + ", ".join(f"{k}={v!r}" for k, v in w.kwargs.items()) + ")")
        model = create_model(model_name, **{**w.kwargs, **kwargs})
        result = load_checkpoint(model, w.url, strict=strict, sha256=sha256 or w.sha256, layout=w.layout,
                                 file_name=w.file_name)
    elif pretrained is None or pretrained is False:
        model, result = create_model(model_name, **kwargs), None
    elif isinstance(pretrained, str) and not is_url(pretrained) and not os.path.exists(os.path.expanduser(pretrained)) \
            and not any(c in pretrained for c in "/\\~") and not pretrained.endswith(_CHECKPOINT_SUFFIXES):
        # a word that is no tag and no file (a mistyped tag, "tv_in1K", was reported as a missing file only)
        tags = [w.tag for w in _WEIGHTS.values() if w.model == model_name]
        close = difflib.get_close_matches(pretrained, tags, n=3, cutoff=0.5)
        shown = ", ".join(tags[:8]) + (f" and {len(tags) - 8} more" if len(tags) > 8 else "")
        raise FileNotFoundError(
            f"pretrained={pretrained!r} is neither a weights tag of {model_name!r} nor a checkpoint file"
            + (f"; did you mean {' or '.join(map(repr, close))}?" if close else "")
            + (f" (its tags: {shown}; visionblocks.weights.list_weights({model_name!r}))" if tags
               else " (it has no published weights registered: pass a path or URL)"))
    else:
        model = create_model(model_name, **kwargs)
        if features is not None:
            extractor = FeatureListNet(copy.deepcopy(model), **features)  # (bad out_indices: refused before reading)
            state = read_checkpoint(pretrained, sha256=sha256)
            if holds_every_key(extractor, state) and not holds_every_key(model, state):  # the extractor's own
                result = load_checkpoint(extractor, state, strict=strict)
                return (extractor, result) if return_result else extractor
            pretrained, sha256 = state, None
        result = load_checkpoint(model, pretrained, strict=strict, sha256=sha256)
    if features is not None:
        model = FeatureListNet(model, **features)
    return (model, result) if return_result else model


# ------------------------------------------------------------------------------------------ the checkpoints
_TV = "https://download.pytorch.org/models/"
_TV_NOTE = "torchvision's reported acc@1, 224 crop (resize {})"


def _tv(model: str, tag: str, source_name: str, fname: str, top1: float, resize: int, default: bool = False,
        **kwargs) -> None:
    # torchvision's file names carry the first hex digits of the file's sha256
    register_weights(PretrainedWeights(
        model=model, tag=tag, url=_TV + fname, layout=_TV_LAYOUT[source_name.split()[0].split("_")[0]], source="torchvision",
        source_name=source_name, kwargs=kwargs, sha256=fname.rsplit("-", 1)[1].split(".")[0], top1=top1,
        top1_note=_TV_NOTE.format(resize), default=default))


_TV_LAYOUT = {"resnet18": "torchvision.resnet", "resnet34": "torchvision.resnet", "resnet50": "torchvision.resnet",
              "resnet101": "torchvision.resnet", "resnet152": "torchvision.resnet", "resnext50": "torchvision.resnet",
              "resnext101": "torchvision.resnet", "mobilenet": "torchvision.mobilenetv2",
              "efficientnet": "torchvision.efficientnet"}

_tv("resnet18", "tv_in1k", "resnet18 IMAGENET1K_V1", "resnet18-f37072fd.pth", 69.758, 256, True)
_tv("resnet34", "tv_in1k", "resnet34 IMAGENET1K_V1", "resnet34-b627a593.pth", 73.314, 256, True)
for _m, _v1, _a1, _v2, _a2 in (("resnet50", "0676ba61", 76.130, "11ad3fa6", 80.858),
                               ("resnet101", "63fe2227", 77.374, "cd907fc2", 81.886),
                               ("resnet152", "394f9c45", 78.312, "f82ba261", 82.284)):
    _tv(_m, "tv_in1k", f"{_m} IMAGENET1K_V1", f"{_m}-{_v1}.pth", _a1, 256, True, stride_3x3=True)
    _tv(_m, "tv2_in1k", f"{_m} IMAGENET1K_V2", f"{_m}-{_v2}.pth", _a2, 232, stride_3x3=True)
for _m, _v1, _a1, _v2, _a2 in (("resnext50_32x4d", "7cdf4587", 77.618, "1a0047aa", 81.198),
                               ("resnext101_32x8d", "8ba56ff5", 79.312, "110c445d", 82.834)):
    _tv(_m, "tv_in1k", f"{_m} IMAGENET1K_V1", f"{_m}-{_v1}.pth", _a1, 256, True, stride_3x3=True)
    _tv(_m, "tv2_in1k", f"{_m} IMAGENET1K_V2", f"{_m}-{_v2}.pth", _a2, 232, stride_3x3=True)
_tv("mobilenetv2", "tv_in1k", "mobilenet_v2 IMAGENET1K_V1", "mobilenet_v2-b0353104.pth", 71.878, 256, True)
_tv("mobilenetv2", "tv2_in1k", "mobilenet_v2 IMAGENET1K_V2", "mobilenet_v2-7ebf99e0.pth", 72.154, 232)
_tv("efficientnet_b0", "tv_in1k", "efficientnet_b0 IMAGENET1K_V1", "efficientnet_b0_rwightman-7f5810bc.pth", 77.692,
    256, True, norm_layer="batchnorm")


# timm's checkpoints on the Hugging Face hub (safetensors).  timm publishes their accuracies in its results tables
# (results-imagenet.csv), not with the weights: ``top1`` is left empty rather than quoted from memory.
_TIMM_WEIGHTS = (  # (our model, our kwargs, converter, timm model, timm tags with 1000 classes)
    ("resnet18", {}, "torchvision.resnet", "resnet18", ("a1_in1k", "a2_in1k", "a3_in1k", "fb_ssl_yfcc100m_ft_in1k", "fb_swsl_ig1b_ft_in1k", "gluon_in1k", "tv_in1k")),
    ("resnet34", {}, "torchvision.resnet", "resnet34", ("a1_in1k", "a2_in1k", "a3_in1k", "bt_in1k", "gluon_in1k", "ra4_e3600_r224_in1k", "tv_in1k")),
    ("resnet50", {"stride_3x3": True}, "torchvision.resnet", "resnet50", ("a1_in1k", "a1h_in1k", "a2_in1k", "a3_in1k", "am_in1k", "b1k_in1k", "b2k_in1k", "bt_in1k", "c1_in1k", "c2_in1k", "d_in1k", "fb_ssl_yfcc100m_ft_in1k", "fb_swsl_ig1b_ft_in1k", "gluon_in1k", "ra_in1k", "ram_in1k", "tv2_in1k", "tv_in1k")),
    ("resnet101", {"stride_3x3": True}, "torchvision.resnet", "resnet101", ("a1_in1k", "a1h_in1k", "a2_in1k", "a3_in1k", "gluon_in1k", "tv2_in1k", "tv_in1k")),
    ("resnet152", {"stride_3x3": True}, "torchvision.resnet", "resnet152", ("a1_in1k", "a1h_in1k", "a2_in1k", "a3_in1k", "gluon_in1k", "tv2_in1k", "tv_in1k")),
    ("resnext50_32x4d", {}, "torchvision.resnet", "resnext50_32x4d", ("a1_in1k", "a1h_in1k", "a2_in1k", "a3_in1k", "fb_ssl_yfcc100m_ft_in1k", "fb_swsl_ig1b_ft_in1k", "gluon_in1k", "ra_in1k", "tv2_in1k", "tv_in1k")),
    ("resnext101_32x8d", {}, "torchvision.resnet", "resnext101_32x8d", ("fb_ssl_yfcc100m_ft_in1k", "fb_swsl_ig1b_ft_in1k", "fb_wsl_ig1b_ft_in1k", "tv2_in1k", "tv_in1k")),
    ("resnet50", {"stride_3x3": True, "stem_type": "deep", "avg_down": True}, "torchvision.resnet", "resnet50d", ("a1_in1k", "a2_in1k", "a3_in1k", "gluon_in1k", "ra2_in1k", "ra4_e3600_r224_in1k")),
    ("se_resnet50", {"stride_3x3": True}, "torchvision.resnet", "seresnet50", ("a1_in1k", "a2_in1k", "a3_in1k", "ra2_in1k")),
    ("eca_resnet50", {"stride_3x3": True, "stem_type": "deep", "avg_down": True}, "torchvision.resnet", "ecaresnet50d", ("miil_in1k",)),
    ("resnest50", {}, "timm.resnest", "resnest50d", ("in1k",)),
    ("res2net50_26w_4s", {}, "timm.res2net", "res2net50_26w_4s", ("in1k",)),
    ("sk_resnet50", {}, "timm.skresnet", "skresnext50_32x4d", ("ra_in1k",)),
    ("mobilenetv2", {}, "timm.efficientnet", "mobilenetv2_100", ("ra_in1k",)),
    ("efficientnet_b0", {"norm_layer": "batchnorm"}, "timm.efficientnet", "efficientnet_b0", ("ra4_e3600_r224_in1k", "ra_in1k")),
    ("ghostnet_100", {}, "timm.ghostnet", "ghostnet_100", ("in1k",)),
    ("mixer_b16", {}, "timm.mlp_mixer", "mixer_b16_224", ("goog_in21k_ft_in1k", "miil_in21k_ft_in1k")),
    ("resmlp_12", {}, "timm.mlp_mixer", "resmlp_12_224", ("fb_dino", "fb_distilled_in1k", "fb_in1k")),
    ("resmlp_24", {}, "timm.mlp_mixer", "resmlp_24_224", ("fb_dino", "fb_distilled_in1k", "fb_in1k")),
    ("resmlp_36", {}, "timm.mlp_mixer", "resmlp_36_224", ("fb_distilled_in1k", "fb_in1k")),
    ("gmlp_s16", {"sgu_eps": 1e-5}, "timm.mlp_mixer", "gmlp_s16_224", ("ra3_in1k",)),
    ("convmixer_768_32", {}, "timm.convmixer", "convmixer_768_32", ("in1k",)),
    ("convmixer_1536_20", {}, "timm.convmixer", "convmixer_1536_20", ("in1k",)),
    ("volo_d1", {}, "timm.volo", "volo_d1_224", ("sail_in1k",)),
    ("mobilevit_xxs", {}, "timm.mobilevit", "mobilevit_xxs", ("cvnets_in1k",)),
    ("mobilevit_xs", {}, "timm.mobilevit", "mobilevit_xs", ("cvnets_in1k",)),
    ("mobilevit_s", {}, "timm.mobilevit", "mobilevit_s", ("cvnets_in1k",)),
    ("mobilevitv2_050", {}, "timm.mobilevit", "mobilevitv2_050", ("cvnets_in1k",)),
    ("mobilevitv2_100", {}, "timm.mobilevit", "mobilevitv2_100", ("cvnets_in1k",)),
    ("mobilevitv2_200", {}, "timm.mobilevit", "mobilevitv2_200", ("cvnets_in1k", "cvnets_in22k_ft_in1k", "cvnets_in22k_ft_in1k_384")),
    ("repvgg_a0", {}, "timm.repvgg", "repvgg_a0", ("rvgg_in1k",)),
    ("repvgg_a1", {}, "timm.repvgg", "repvgg_a1", ("rvgg_in1k",)),
    ("repvgg_b0", {}, "timm.repvgg", "repvgg_b0", ("rvgg_in1k",)),
)


for _model, _kwargs, _layout, _timm_model, _tags in _TIMM_WEIGHTS:
    for _t in _tags:
        _short = _timm_model in (_model, _model + "_224")
        register_weights(PretrainedWeights(
            model=_model, tag=f"timm.{_t}" if _short else f"timm.{_timm_model}.{_t}",
            url=f"https://huggingface.co/timm/{_timm_model}.{_t}/resolve/main/model.safetensors",
            file_name=f"timm--{_timm_model}.{_t}.safetensors", layout=_layout, source="timm",
            source_name=f"{_timm_model}.{_t}", kwargs=_kwargs, top1_note="see timm's results tables"))


# the papers' authors' releases
_DEIT = "https://dl.fbaipublicfiles.com/deit/"
for _model, _top1 in (("resmlp_12", 77.8), ("resmlp_24", 80.8), ("resmlp_36", 81.1)):
    register_weights(PretrainedWeights(
        model=_model, tag="fb_dist_in1k", url=f"{_DEIT}{_model}_dist.pth", layout="authors.resmlp",
        source="authors: facebookresearch/deit", source_name=f"{_model}_dist.pth", top1=_top1,
        top1_note="the authors' README (distilled, 224)"))
register_weights(PretrainedWeights(
    model="cbam_resnet50", tag="authors_in1k", url=None, layout="authors.cbam",
    page="https://drive.google.com/file/d/1mvAVvhLR_2XY_bPYxh-SEz4vDmGzSArO/view?usp=sharing",
    source="authors: Jongchan/attention-module", source_name="ResNet50+CBAM (100 epochs)", kwargs={"stride_3x3": True},
    top1=77.622, top1_note="the authors' README (ACC@1)"))
for _n in ("A0", "A1", "B0"):
    register_weights(PretrainedWeights(
        model=f"repvgg_{_n.lower()}", tag="authors_in1k", url=None, layout="authors.repvgg",
        page="https://drive.google.com/drive/folders/1Avome4KvNp0Lqh2QwhXO6L5URQjzCjUq?usp=sharing",
        source="authors: DingXiaoH/RepVGG", source_name=f"RepVGG-{_n}-train.pth",
        top1_note="see the authors' README and paper (Table 4)"))
register_weights(PretrainedWeights(
    model="resnest50", tag="authors_in1k",
    url="https://github.com/zhanghang1989/ResNeSt/releases/download/weights_step1/resnest50-528c19ca.pth",
    sha256="528c19ca", layout="timm.resnest", source="authors: zhanghang1989/ResNeSt", source_name="resnest50",
    top1=81.03, top1_note="the authors' README (PyTorch, crop 224)"))
register_weights(PretrainedWeights(
    model="res2net50_26w_4s", tag="authors_in1k",
    url="https://shanghuagao.oss-cn-beijing.aliyuncs.com/res2net/res2net50_26w_4s-06e79181.pth", sha256="06e79181",
    layout="timm.res2net", source="authors: Res2Net/Res2Net-PretrainedModels", source_name="res2net50_26w_4s",
    top1=77.99, top1_note="the authors' README lists top-1 error 22.01"))
register_weights(PretrainedWeights(
    model="ghostnet_100", tag="authors_in1k",
    url="https://github.com/huawei-noah/Efficient-AI-Backbones/raw/master/ghostnet_pytorch/models/state_dict_73.98.pth",
    file_name="ghostnet_state_dict_73.98.pth", layout="timm.ghostnet", source="authors: huawei-noah/Efficient-AI-Backbones",
    source_name="ghostnet 1.0x (state_dict_73.98.pth)", top1=73.98, top1_note="the file name / the paper (1.0x, 224)"))
register_weights(PretrainedWeights(
    model="volo_d1", tag="authors_in1k", url="https://github.com/sail-sg/volo/releases/download/volo_1/d1_224_84.2.pth.tar",
    file_name="volo_d1_224_84.2.pth.tar", layout="timm.volo", source="authors: sail-sg/volo", source_name="volo_d1 (224)",
    top1=84.2, top1_note="the authors' README (224)"))
register_weights(PretrainedWeights(
    model="sa_resnet50", tag="authors_in1k", url=None, page="https://pan.baidu.com/s/1-TEXeMjprUDyx013l3vZIQ (code 474p)",
    layout="authors.attention_resnet", source="authors: wofmanaf/SA-Net", source_name="sa_resnet50",
    top1=77.88, top1_note="the authors' README"))
register_weights(PretrainedWeights(
    model="sge_resnet50", tag="authors_in1k", url=None, page="https://drive.google.com/open?id=13HPCjrEle6aFbiCo8Afkr2jJssdNwdRn",
    layout="authors.attention_resnet", source="authors: implus/PytorchInsight", source_name="sge_resnet50.pth.tar",
    kwargs={"attn_kwargs": {"unbiased": True}}, top1=77.584,
    top1_note="the authors' README (their SGE divides by the unbiased standard deviation: unbiased=True)"))


# --- W2: the authors' token / attention / other models (converters in authors_token.py) ---------------------------
for _model, _name, _fid, _top1 in (("gfnet_ti", "gfnet-ti", "3d0c1579aa524a0a99dd", 74.6),
                                   ("gfnet_xs", "gfnet-xs", "e0ab5b1583954a1fa9b2", 78.6),
                                   ("gfnet_s", "gfnet-s", "e5561fa070c44d9399bf", 80.0)):
    register_weights(PretrainedWeights(
        model=_model, tag="authors_in1k", url=f"https://cloud.tsinghua.edu.cn/f/{_fid}/?dl=1",
        file_name=f"{_name}.pth", layout="authors.gfnet", source="authors: raoyongming/GFNet", source_name=_name,
        top1=_top1, top1_note="the authors' README (ImageNet, 224)"))
for _model, _top1 in (("rest_lite", 77.2), ("rest_small", 79.6), ("rest_base", 81.6)):
    register_weights(PretrainedWeights(
        model=_model, tag="authors_in1k", url=None, kwargs={"stem": "basic"},
        page="https://drive.google.com/drive/folders/1H6QUZsKYbU6LECtxzGHKqEeGbx1E8uQ9",
        layout="authors.rest", source="authors: wofmanaf/ResT", source_name=_model.replace("rest_", "ResTv1-"),
        top1=_top1, top1_note="the authors' README (ResTv1, 224); built with their code's BasicStem (stem='basic'): "
                              "a file with their 7x7 Stem is refused, naming stem='conv7x7'"))
register_weights(PretrainedWeights(
    model="vip_s7", tag="authors_in1k", url=None, page="https://drive.google.com/file/d/1cX6eauDrsGsLSZnqsX7cl0oiKX8Dzv5z/view?usp=sharing",
    layout="authors.vip", source="authors: Andrew-Qibin/VisionPermutator", source_name="ViP-Small/7", top1=81.5,
    top1_note="the authors' README (224)"))
for _model, _file, _top1 in (("smlpnet_s", "smlp_s.pth", 83.1), ("smlpnet_b", "smlp_b.pth", 83.4)):
    register_weights(PretrainedWeights(
        model=_model, tag="authors_in1k", url=f"https://github.com/microsoft/SPACH/releases/download/v1.0/{_file}",
        file_name=f"spach_{_file}", layout="authors.smlpnet", source="authors: microsoft/SPACH", source_name=_file,
        top1=_top1, top1_note="the authors' README (224)"))
register_weights(PretrainedWeights(
    model="cotnet50", tag="authors_in1k", url=None, page="https://drive.google.com/file/d/1SR5ezIu7LN943zHaUh4mC0ehxBVMqtfv/view?usp=sharing",
    layout="authors.cotnet", source="authors: JDAI-CV/CoTNet", source_name="CoTNet-50", top1=81.3,
    top1_note="the authors' README (224)"))
_REDNET = "https://hkustconnect-my.sharepoint.com/:u:/g/personal/dlibh_connect_ust_hk/"
for _depth, _link, _top1 in ((26, "EWmTnvB1cqtIi-OI4HfxGBgBKzO0w_qc3CnErHhNfBitlg?e=XPws5X", 75.96),
                             (38, "ETZIquU7P3lDvru0OAPiTYIBAt-B__2LpP_NeB4sR0hJsg?e=b9Rbl0", 77.48),
                             (50, "EZjRG3qUMu5IuR7YH4Giyc8B6koPvu6s8rOlIG8-BuFevg?e=f4ce5G", 78.35)):
    register_weights(PretrainedWeights(
        model=f"rednet{_depth}", tag="authors_in1k", url=None, page=_REDNET + _link, layout="authors.rednet",
        source="authors: d-li14/involution", source_name=f"RedNet-{_depth} (mmcls)", top1=_top1,
        top1_note="the authors' README (224)"))


# --- W1: the authors' CNN releases (converters in authors_cnn.py) ---------------------------------------------------
register_weights(PretrainedWeights(
    model="eca_resnet50", tag="authors_in1k", url=None,
    page="https://drive.google.com/open?id=1670rce333c_lyMWFzBlNZoVUvtxbCF_U",
    layout="authors.eca", source="authors: BangguWu/ECANet", source_name="eca_resnet50_k3557",
    kwargs={"stride_3x3": True, "eca_kernel_sizes": (3, 5, 5, 7)}, top1=77.42,
    top1_note="the authors' README (ECA-Net50, 224; also on BaiduDrive, code no6u)"))
register_weights(PretrainedWeights(
    model="scnet50", tag="authors_in1k", url="https://backseason.oss-cn-beijing.aliyuncs.com/scnet/scnet50-dc6a7e87.pth",
    sha256="dc6a7e87", layout="authors.scnet", source="authors: MCG-NKU/SCNet", source_name="scnet50", top1=77.81,
    top1_note="the authors' README lists top-1 error 22.19 (224)"))
register_weights(PretrainedWeights(
    model="dbb_resnet18", tag="authors_in1k", url=None,
    page="https://drive.google.com/drive/folders/1BPuqY_ktKz8LvHjFK5abD0qy3ESp8v6H?usp=sharing",
    layout="authors.dbb", source="authors: DingXiaoH/DiverseBranchBlock", source_name="ResNet-18_DBB_7101.pth",
    top1=71.01, top1_note="the authors' file name (training-time form; also on Baidu Cloud, code dbbk)"))
register_weights(PretrainedWeights(
    model="repmlpnet_t224", tag="authors_in1k", url=None,
    page="https://drive.google.com/file/d/1TgPDD78G-d3h_Y_vNTuqYdSJZHmnju7b/view?usp=sharing",
    layout="authors.repmlpnet", source="authors: DingXiaoH/RepMLP", source_name="RepMLPNet-T224 (training form)",
    top1=76.62, top1_note="the authors' README (224; also on Baidu, pwd rmlp)"))
register_weights(PretrainedWeights(
    model="coconv_resnet50", tag="authors_in1k", url=None,
    page="https://drive.google.com/uc?export=download&id=1fnANwWhU6SjRpPLSHIji-nLNhdVdtBSs",
    layout="authors.coresnet", source="authors: iduta/coconv", source_name="coresnet50", kwargs={"stride_3x3": True},
    top1=77.27, top1_note="the authors' README (CoResNet-50)"))
for _model, _file in (("parnet_m", "planes_128_256_512_2048_num_blocks_5_6_6_1_sebv_13.pth.tar"),
                      ("parnet_l", "planes_160_320_640_2560_num_blocks_5_6_6_1_sebv_13_dropout_lin.pth.tar")):
    register_weights(PretrainedWeights(
        model=_model, tag="authors_in1k", url=None, page="https://github.com/imankgoyal/NonDeepNetworks/releases/tag/v.0.1.0",
        layout="authors.parnet", source="authors: imankgoyal/NonDeepNetworks", source_name=_file,
        top1_note="the authors' README states none: see the paper (Table 1)"))
for _model, _name, _top1 in (("mobilevit_xxs", "mobilevit_xxs", 69.0), ("mobilevit_xs", "mobilevit_xs", 74.7),
                             ("mobilevit_s", "mobilevit_s", 78.3)):
    register_weights(PretrainedWeights(
        model=_model, tag="authors_in1k",
        url=f"https://docs-assets.developer.apple.com/ml-research/models/cvnets/classification/{_name}.pt",
        file_name=f"cvnets_{_name}.pt", layout="authors.mobilevit", source="authors: apple/ml-cvnets", source_name=_name,
        top1=_top1, top1_note="the authors' model zoo (docs/source/en/general/README-model-zoo.md)"))
_CVNETS_V2 = "https://docs-assets.developer.apple.com/ml-research/models/cvnets-v2/classification/mobilevitv2/imagenet1k/256x256/"
for _model, _width, _top1 in (("mobilevitv2_050", "0.5", 70.18), ("mobilevitv2_100", "1.0", 78.09),
                              ("mobilevitv2_200", "2.0", 81.17)):
    register_weights(PretrainedWeights(
        model=_model, tag="authors_in1k", url=f"{_CVNETS_V2}mobilevitv2-{_width}.pt",
        file_name=f"cvnets_mobilevitv2-{_width}_in1k_256.pt", layout="authors.mobilevit", source="authors: apple/ml-cvnets",
        source_name=f"mobilevitv2-{_width} (imagenet1k, 256x256)", top1=_top1,
        top1_note="the authors' model zoo (256x256)"))

# --- BAM: the authors' ResNet50+BAM (converter authors.bam in authors_cnn.py) ----------------------------------------
register_weights(PretrainedWeights(
    model="bam_resnet50", tag="authors_in1k", url=None, layout="authors.bam",
    page="https://drive.google.com/file/d/1auVf70gfL0ol40bvaX5rlbpn9cKIxhAL/view?usp=sharing",
    source="authors: Jongchan/attention-module", source_name="ResNet50+BAM (90 epochs)",
    kwargs={"stride_3x3": True, "stage_attn_kwargs": {"layout": "authors"}},
    top1=76.860, top1_note="the authors' README (ACC@1)"))
