"""Prove each checkpoint converter against the source implementation itself, and write its layout manifest.

Run it where the sources are installed (timm and torchvision; nothing of theirs is copied here)::

    pip install timm torchvision && pip install -e . --no-deps
    python tools/weights_harness.py                 # every case: compare, print the table
    python tools/weights_harness.py --write         # ... and (re)write visionblocks/weights/manifests/*.json
    python tools/weights_harness.py --only resnet   # cases whose id contains "resnet"
    python tools/weights_harness.py --authors-dir DIR   # also the authors' code: DIR/<owner>+<repo>/ checkouts

The authors' cases import the authors' own code from those checkouts (at the commit recorded in each manifest;
ResNeSt's needs ``fvcore``, VOLO's and ResMLP's ``timm``); without ``--authors-dir`` they report an error and
the others run.

For every case: build the source network with random weights (BatchNorm statistics, affine parameters and
zero-initialised tensors randomised too, so that a swapped or dropped tensor shows), take its state dict in
float64, convert and load it into our model with ``strict=True``, and compare both networks' outputs on the same
random input in float64.  A case passes when ``max|ours - source| / max|source| <= 1e-6``.  ``--write`` stores,
per case, the source's key names and shapes with the source, its version and the measured difference: the
default test-suite converts that manifest (no source needed) and the weights table (``python -m
visionblocks.weights.docs``) reports it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "visionblocks" / "weights" / "manifests"
TOL = 1e-6


@dataclass
class Case:
    """``source`` ("torchvision" or "timm") model ``source_model(**source_kwargs)`` -> our ``model(**kwargs)``
    through converter ``converter``, compared at ``size`` x ``size``."""

    converter: str
    source: str
    source_model: str
    model: str
    kwargs: dict = field(default_factory=dict)
    source_kwargs: dict = field(default_factory=dict)
    size: int = 64
    tol: float = TOL
    note: str = ""  # why a case is not exact (then ``tol`` is the measured bound it is held to)
    folded: bool = False  # compare the source's re-parameterized (deploy) form
    variant: str = ""  # tells apart two cases of one source network and model (e.g. another stem option)

    @property
    def label(self) -> str:
        """The source network's short name (an authors' case names ``repo:module:function``)."""
        return self.model if self.source == "authors" else self.source_model

    @property
    def id(self) -> str:
        prefix = "" if self.converter.startswith(self.source + ".") else self.source + "."
        return (f"{self.converter}--{prefix}{self.label}" + ("-folded" if self.folded else "")
                + (f"-{self.variant}" if self.variant else ""))


def _tv(name, ours, size=64, **kw):
    return Case("torchvision." + ("resnet" if "res" in name else name.split("_")[0].replace("mobilenet", "mobilenetv2")),
                "torchvision", name, ours, kw, size=size)


CASES: list[Case] = [
    _tv("resnet18", "resnet18"),
    _tv("resnet34", "resnet34"),
    _tv("resnet50", "resnet50", stride_3x3=True),
    _tv("resnet101", "resnet101", stride_3x3=True),
    _tv("resnet152", "resnet152", stride_3x3=True),
    _tv("resnext50_32x4d", "resnext50_32x4d"),
    _tv("resnext101_32x8d", "resnext101_32x8d"),
    _tv("mobilenet_v2", "mobilenetv2"),
    _tv("efficientnet_b0", "efficientnet_b0", norm_layer="batchnorm"),
]


def _timm(converter, name, ours, size=64, tol=TOL, note="", **kw):
    return Case(converter, "timm", name, ours, kw, size=size, tol=tol, note=note)


CASES += [
    _timm("torchvision.resnet", "resnet50", "resnet50", stride_3x3=True),
    _timm("torchvision.resnet", "resnet50d", "resnet50", stride_3x3=True, stem_type="deep", avg_down=True),
    _timm("torchvision.resnet", "seresnet50", "se_resnet50", stride_3x3=True),
    _timm("torchvision.resnet", "ecaresnet50d", "eca_resnet50", stride_3x3=True, stem_type="deep", avg_down=True),
    _timm("timm.resnest", "resnest50d", "resnest50"),
    _timm("timm.res2net", "res2net50_26w_4s", "res2net50_26w_4s"),
    _timm("timm.skresnet", "skresnext50_32x4d", "sk_resnet50"),
    _timm("timm.efficientnet", "mobilenetv2_100", "mobilenetv2"),
    _timm("timm.efficientnet", "efficientnet_b0", "efficientnet_b0", norm_layer="batchnorm"),
    _timm("timm.efficientnet", "efficientnet_cc_b0_8e", "condconv_efficientnet_b0_8e", norm_layer="batchnorm"),
    _timm("timm.ghostnet", "ghostnet_100", "ghostnet_100"),
] + [_timm("timm.mlp_mixer", f"{name}_224", name, size=224) for name in (
    "mixer_s16", "mixer_b16", "resmlp_12", "resmlp_24", "resmlp_36")]
# timm's spatial gating unit normalises with LayerNorm eps 1e-5 (its block norms 1e-6, as ours): sgu_eps=1e-5
CASES += [_timm("timm.mlp_mixer", f"{name}_224", name, size=224, sgu_eps=1e-5)
          for name in ("gmlp_ti16", "gmlp_s16", "gmlp_b16")]
CASES += [
    _timm("timm.convmixer", "convmixer_768_32", "convmixer_768_32"),
    _timm("timm.convmixer", "convmixer_1536_20", "convmixer_1536_20"),
    _timm("timm.volo", "volo_d1_224", "volo_d1", size=224),
] + [_timm("timm.mobilevit", name, name) for name in (
    "mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilevitv2_050", "mobilevitv2_100", "mobilevitv2_200")]
CASES += [_timm("timm.repvgg", name, name) for name in ("repvgg_a0", "repvgg_a1", "repvgg_b0")]
CASES += [Case("timm.repvgg", "timm", name, name, {"deploy": True}, folded=True) for name in ("repvgg_a0", "repvgg_a1", "repvgg_b0")]


def _authors(converter, spec, ours, size=64, source_kwargs=None, tol=TOL, note="", **kw):
    """``spec`` is ``"owner/repo:module.path:function"``, found under ``--authors-dir`` as ``owner+repo/``."""
    return Case(converter, "authors", spec, ours, kw, source_kwargs=dict(source_kwargs or {}), size=size, tol=tol,
                note=note)


CASES += [
    _authors("authors.repvgg", "DingXiaoH/RepVGG:repvgg:create_RepVGG_A0", "repvgg_a0"),
    _authors("authors.repvgg", "DingXiaoH/RepVGG:repvgg:create_RepVGG_A1", "repvgg_a1"),
    _authors("authors.repvgg", "DingXiaoH/RepVGG:repvgg:create_RepVGG_B0", "repvgg_b0"),
    # (ConvMixer-768/32 is a ReLU network, trained with the authors' timm fork: timm's layout, verified above)
    _authors("authors.convmixer", "locuslab/convmixer:convmixer:ConvMixer", "convmixer_1536_20",
             source_kwargs={"dim": 1536, "depth": 20, "kernel_size": 9, "patch_size": 7}),
    _authors("authors.cbam", "Jongchan/attention-module:MODELS.model_resnet:ResidualNet", "cbam_resnet50", size=224,
             source_kwargs={"network_type": "ImageNet", "depth": 50, "num_classes": 1000, "att_type": "CBAM"},
             stride_3x3=True),
    _authors("authors.attention_resnet", "wofmanaf/SA-Net:models.sa_resnet:sa_resnet50", "sa_resnet50"),
    # the authors' SGE divides by the unbiased standard deviation (torch.std): our sge's unbiased=True
    _authors("authors.attention_resnet", "implus/PytorchInsight:classification.models.imagenet.resnet_sge:sge_resnet50",
             "sge_resnet50", attn_kwargs={"unbiased": True}),
    _authors("authors.resmlp", "facebookresearch/deit:resmlp_models:resmlp_12", "resmlp_12", size=224),
    _authors("authors.resmlp", "facebookresearch/deit:resmlp_models:resmlp_24", "resmlp_24", size=224),
    _authors("authors.resmlp", "facebookresearch/deit:resmlp_models:resmlp_36", "resmlp_36", size=224),
]
# the authors' code of networks whose keys timm kept: their checkpoints load through the timm converters
CASES += [
    _authors("timm.resnest", "zhanghang1989/ResNeSt:resnest.torch.models.resnest:resnest50", "resnest50"),
    _authors("timm.res2net", "Res2Net/Res2Net-PretrainedModels:res2net:res2net50_26w_4s", "res2net50_26w_4s"),
    _authors("timm.ghostnet", "huawei-noah/Efficient-AI-Backbones:ghostnet_pytorch.ghostnet:ghostnet", "ghostnet_100"),
    _authors("timm.volo", "sail-sg/volo:models.volo:volo_d1", "volo_d1", size=224),
]
CASES += [Case("authors.repvgg", "authors", f"DingXiaoH/RepVGG:repvgg:create_RepVGG_{n}", f"repvgg_{n.lower()}",
               {"deploy": True}, folded=True) for n in ("A0", "A1", "B0")]

AUTHORS_DIR: Path | None = None  # set by --authors-dir


def _authors_repo(spec: str) -> Path:
    repo = spec.split(":", 1)[0]
    if AUTHORS_DIR is None:
        raise RuntimeError("authors' cases need --authors-dir DIR holding a checkout of each repository as "
                           "DIR/<owner>+<repo>/ (skip them with --only)")
    path = AUTHORS_DIR / repo.replace("/", "+")
    if not path.is_dir():
        raise RuntimeError(f"no checkout of {repo} at {path}")
    return path


def _authors_commit(spec: str) -> str:
    path = _authors_repo(spec)
    if (path / ".commit").is_file():
        return (path / ".commit").read_text().strip()
    import subprocess
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def _source_versions() -> dict[str, str]:
    out = {}
    for name in ("torchvision", "timm"):
        try:
            out[name] = __import__(name).__version__.split("+")[0]
        except ImportError:
            pass
    return out


def build_source(case: Case) -> torch.nn.Module:
    if case.source == "torchvision":
        import torchvision
        return torchvision.models.get_model(case.source_model, weights=None, **case.source_kwargs)
    if case.source == "timm":
        import timm
        return timm.create_model(case.source_model, pretrained=False, **case.source_kwargs)
    if case.source == "authors":
        import importlib
        _, module, fn = case.source_model.split(":")
        path = str(_authors_repo(case.source_model))
        sys.path.insert(0, path)
        try:
            for name in [m for m in sys.modules if m == module.split(".")[0] or m.startswith(module.split(".")[0] + ".")]:
                del sys.modules[name]  # another repository's module of the same name
            return getattr(importlib.import_module(module), fn)(**case.source_kwargs)
        finally:
            sys.path.remove(path)
    raise ValueError(f"unknown source {case.source!r}")


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Move every tensor away from its structured initialisation (identity BN, zero-initialised scales), keeping
    the network's activations at a sane scale."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.1)
            elif t.ndim <= 1:
                t.add_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.1)
            elif float(t.std()) < 1e-3:  # zero or near-zero initialisations (gMLP's spatial gate) hide differences
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.02)


def run_case(case: Case, write: bool, versions: dict[str, str]) -> dict:
    import visionblocks as vb
    from visionblocks.weights import load_checkpoint

    torch.manual_seed(0)
    src = build_source(case).eval()
    randomise(src)
    if case.folded and case.source == "timm":
        from timm.utils.model import reparameterize_model
        src = reparameterize_model(src)
    elif case.folded:  # the authors' own fold
        for m in list(src.modules()):
            if hasattr(m, "switch_to_deploy"):
                m.switch_to_deploy()
    src = src.double()
    sd = src.state_dict()
    ours = vb.create_model(case.model, **case.kwargs).double().eval()
    x = torch.randn(2, 3, case.size, case.size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        a, before = src(x), ours(x)
    res = load_checkpoint(ours, sd, strict=True)
    if res.layout != case.converter:
        raise AssertionError(f"{case.id}: recognised as {res.layout}, expected {case.converter}")
    with torch.no_grad():
        b = ours(x)
    diff = float((a - b).abs().max() / a.abs().max())
    # the same comparison before loading: shows the check can fail (a converter that loaded nothing would not pass)
    control = float((a - before).abs().max() / a.abs().max())
    if control <= 1e3 * TOL:
        raise AssertionError(f"{case.id}: our freshly initialised model already matches the source ({control:.1e})")
    version = _authors_commit(case.source_model) if case.source == "authors" else versions.get(case.source, "?")
    rec = {"converter": case.converter, "source": case.source, "source_version": version,
           "source_model": case.source_model, "source_kwargs": case.source_kwargs, "model": case.model,
           "kwargs": case.kwargs, "folded": case.folded, "input": [2, 3, case.size, case.size], "dtype": "float64",
           "max_rel_diff": diff, "control_rel_diff": control, "exact": diff <= TOL, "passed": diff <= case.tol,
           "note": case.note}
    if write:
        MANIFESTS.mkdir(parents=True, exist_ok=True)
        keys = [[k, list(v.shape)] for k, v in sd.items()]
        text = "{\n" + "".join(f" {json.dumps(k)}: {json.dumps(v)},\n" for k, v in rec.items())
        text += ' "keys": [\n' + ",\n".join(f"  {json.dumps(kv)}" for kv in keys) + "\n ]\n}\n"
        (MANIFESTS / f"{case.id}.json").write_text(text)
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="*", default=None, help="run the cases whose id contains one of these")
    p.add_argument("--write", action="store_true", help="write the manifests")
    p.add_argument("--list", action="store_true", help="list the cases")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--authors-dir", type=Path, default=None,
                   help="checkouts of the authors' repositories, as DIR/<owner>+<repo>/ (needed by the authors' cases)")
    args = p.parse_args(argv)
    global AUTHORS_DIR
    AUTHORS_DIR = args.authors_dir
    torch.set_num_threads(args.threads)
    cases = [c for c in CASES if not args.only or any(s in c.id for s in args.only)]
    if args.list:
        print("\n".join(c.id for c in cases))
        return 0
    versions = _source_versions()
    failed = 0
    for case in cases:
        t0 = time.time()
        try:
            rec = run_case(case, args.write, versions)
            status = ("ok  " if rec["exact"] else "NOTE") if rec["passed"] else "FAIL"
            failed += not rec["passed"]
            print(f"{status} {case.id:60s} max rel diff {rec['max_rel_diff']:.2e}  ({time.time() - t0:.1f}s)"
                  + (f"  [{case.note}]" if case.note else ""), flush=True)
        except Exception as e:  # noqa: BLE001 - report every case
            failed += 1
            print(f"ERR  {case.id:60s} {type(e).__name__}: {str(e)[:600]}", flush=True)
    print(f"{len(cases) - failed}/{len(cases)} passed")
    return 1 if failed else 0


# --- W2: the authors' token / attention / other models (visionblocks/weights/authors_token.py) ------------------
# Some authors' files import things their network does not use (numpy's old private modules, mmcv, cupy): a case
# may name shims, installed in sys.modules (or patched onto their module) only while the source network is built.
import contextlib  # noqa: E402
import types  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402


@contextlib.contextmanager
def _stub_modules(stubs: dict[str, dict]) -> Iterator[None]:
    """Install empty modules ``{name: attributes}`` for imports the source network does not use (``None``: drop
    the cached module of that name so that theirs is imported); restore ``sys.modules`` after."""
    saved = {name: sys.modules.get(name) for name in stubs}
    try:
        for name, attrs in stubs.items():
            if attrs is None:  # a module of the same name from another repository: import theirs afresh
                sys.modules.pop(name, None)
                continue
            if name in sys.modules and not attrs.pop("_replace", False):
                continue
            mod = types.ModuleType(name)
            mod.__dict__.update(attrs)
            sys.modules[name] = mod
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _unused(name: str) -> Callable:
    def fail(*args, **kwargs):
        raise RuntimeError(f"harness stub {name} was called: the source network uses it")
    return fail


# repository -> (module stubs, or a function of the checkout's path returning them; a wrapper of the built network)
_W2_SHIMS: dict[str, tuple[dict[str, dict], Callable | None]] = {
    "raoyongming/GFNet": ({"numpy.lib.arraypad": {"pad": _unused("numpy.lib.arraypad.pad")}}, None),
}
_W2_PATCH: dict[str, Callable[[types.ModuleType], None]] = {}  # spec -> patch of the authors' module
_W2_OPTS: dict[str, Callable] = {}  # repository -> its options namespace with their defaults


_build_source_w2_base = build_source


def build_source(case: Case) -> torch.nn.Module:  # noqa: F811 - the base one, with the W2 cases' shims
    repo = case.source_model.split(":")[0]
    if case.source != "authors" or (repo not in _W2_SHIMS and case.source_model not in _W2_PATCH):
        return _build_source_w2_base(case)
    import importlib
    stubs, wrap = _W2_SHIMS.get(repo, ({}, None))
    patch = _W2_PATCH.get(case.source_model)
    _, module, fn = case.source_model.split(":")
    root = _authors_repo(case.source_model)
    stubs = stubs(root) if callable(stubs) else stubs
    sys.path.insert(0, str(root))
    try:
        top = module.split(".")[0]
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[name]  # another repository's module of the same name
        with _stub_modules({k: None if v is None else dict(v) for k, v in stubs.items()}):
            mod = importlib.import_module(module)
            if patch is not None:
                patch(mod)
            kwargs = dict(case.source_kwargs)
            if isinstance(kwargs.get("opts"), dict):  # options with dotted names over the defaults (ml-cvnets)
                opts = _W2_OPTS[repo]()
                for key, value in kwargs["opts"].items():
                    setattr(opts, key, value)
                kwargs["opts"] = opts
            net = getattr(mod, fn)(**kwargs)
            return wrap(net) if wrap is not None else net
    finally:
        sys.path.remove(str(root))


_W2_GFNET = "raoyongming/GFNet:gfnet:GFNet"
CASES += [_authors("authors.gfnet", _W2_GFNET, name, size=224, source_kwargs={"embed_dim": dim, "depth": depth})
          for name, dim, depth in (("gfnet_ti", 256, 12), ("gfnet_xs", 384, 12), ("gfnet_s", 384, 19))]


# ResT: their rest_* functions build BasicStem (three 3x3 convolutions); the paper's counts are those of their Stem
# class (conv7x7 + maxpool), which ours follows: the case builds their network with their Stem.
_W2_PATCH.update({f"wofmanaf/ResT:models.rest:{n}": lambda mod: setattr(mod, "BasicStem", mod.Stem)
                  for n in ("rest_lite", "rest_small", "rest_base")})
CASES += [_authors("authors.rest", f"wofmanaf/ResT:models.rest:{n}", n,
                   note="their network built with their Stem class (conv7x7 + maxpool) in place of BasicStem")
          for n in ("rest_lite", "rest_small", "rest_base")]
# ... and as their rest_* functions build it (BasicStem), the form of their released checkpoints: our stem="basic"
CASES += [Case("authors.rest", "authors", f"wofmanaf/ResT:models:{n}", n, {"stem": "basic"},
               variant="basicstem") for n in ("rest_lite", "rest_small", "rest_base")]

CASES += [_authors("authors.vip", "Andrew-Qibin/VisionPermutator:models.vip:vip_s7", "vip_s7", size=224)]


class _Rearrange(torch.nn.Module):
    """Stand-in for einops' ``Rearrange`` layer, for the two channel-order patterns sMLPNet uses."""

    _PERMS = {"b c h w -> b h w c": (0, 2, 3, 1), "b h w c -> b c h w": (0, 3, 1, 2)}

    def __init__(self, pattern: str):
        super().__init__()
        self.perm = self._PERMS[pattern]

    def forward(self, x):
        return x.permute(*self.perm)


_W2_SHIMS["microsoft/SPACH"] = ({"einops": {"rearrange": _unused("einops.rearrange")}, "einops.layers": {},
                                 "einops.layers.torch": {"Rearrange": _Rearrange, "Reduce": _unused("einops Reduce")}}, None)
CASES += [_authors("authors.smlpnet", f"microsoft/SPACH:models.registry:smlpnet_{a}", f"smlpnet_{b}", size=224)
          for a, b in (("tiny", "t"), ("small", "s"), ("base", "b"))]


# CoTNet: their CoT layer aggregates with a CuPy CUDA kernel (cupy_layers.aggregation_zeropad): the same operation in
# torch for the CPU check, out[b, c, h, w] = sum_k w[b, 0, c % Cw, k, h, w] * x_unfold[b, c, k, h, w] (zero
# padding); their timm fork's config needs yacs (a dict with attributes stands in); unused kernels fail if called.
class _LocalConvolution(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, pad_mode=0):
        super().__init__()
        self.k, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation

    def forward(self, x, w):
        b, c, kk, (h, wd) = x.shape[0], x.shape[1], self.k * self.k, w.shape[-2:]
        cols = torch.nn.functional.unfold(x, self.k, self.dilation, self.padding, self.stride)
        cols = cols.view(b, c // w.shape[2], w.shape[2], kk, h, wd)  # channel c = g * Cw + (c % Cw)
        return (cols * w[:, :1]).sum(3).reshape(b, c, h, wd)


class _CfgNode(dict):
    __getattr__ = dict.get

    def __setattr__(self, key, value):
        self[key] = value


_W2_SHIMS["JDAI-CV/CoTNet"] = ({
    "cupy_layers": {"_replace": True}, "cupy_layers.aggregation_zeropad": {"_replace": True, "LocalConvolution": _LocalConvolution},
    **{f"cupy_layers.aggregation_zeropad_{n}": {"_replace": True, f"LocalConvolution{n.title().replace('_', '')}": _unused(n)}
       for n in ("mix", "mix_merge", "dilate")},
    "yacs": {}, "yacs.config": {"CfgNode": _CfgNode}, "einops": {"rearrange": _unused("einops.rearrange")},
    "config": None}, None)

CASES += [_authors("authors.cotnet", "JDAI-CV/CoTNet:models.cotnet:cotnet50", "cotnet50",
                   note="their CuPy local aggregation replaced by the same sum in torch (harness)")]


# RedNet: the authors' backbone file (cls/mmcls/models/backbones/rednet.py) is written for mmcv/mmcls, absent here.
# The stand-ins follow mmcv's conventions for what the file builds (ConvModule = conv [bias only without norm] ->
# "bn" -> activation; build_norm_layer(cfg, C, postfix) = ("bn<postfix>", BatchNorm2d)); their involution is their
# own pure-torch involution_naive.py (instead of the CuPy one); the classifier around the backbone is mmcls's
# ImageClassifier as their configs build it (global average pool, LinearClsHead "head.fc"), keys "backbone.*".
class _ConvModule(torch.nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, conv_cfg=None,
                 norm_cfg=None, act_cfg={"type": "ReLU"}, inplace=True):  # noqa: B006 - mmcv's default
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=norm_cfg is None)
        if norm_cfg is not None:
            self.bn = torch.nn.BatchNorm2d(out_channels)
        if act_cfg is not None:
            self.activate = torch.nn.ReLU()


class _Registry:
    def register_module(self, *args, **kwargs):
        return lambda cls: cls


class _MMClsClassifier(torch.nn.Module):
    def __init__(self, backbone, num_classes=1000):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Module()
        self.head.fc = torch.nn.Linear(backbone.feat_dim, num_classes)

    def forward(self, x):
        return self.head.fc(self.backbone(x).mean((2, 3)))


def _rednet_stubs(root: Path) -> dict:
    pkg = root / "cls" / "mmcls" / "models"

    def involution(*args, **kwargs):
        import importlib
        return importlib.import_module("mmcls.models.utils.involution_naive").involution(*args, **kwargs)

    return {"mmcv": {}, "mmcv.cnn": {"ConvModule": _ConvModule, "build_conv_layer": lambda cfg, *a, **k: torch.nn.Conv2d(*a, **k),
                                     "build_norm_layer": lambda cfg, c, postfix="": (f"bn{postfix}", torch.nn.BatchNorm2d(c)),
                                     "constant_init": _unused("constant_init"), "kaiming_init": _unused("kaiming_init")},
            "mmcv.utils": {}, "mmcv.utils.parrots_wrapper": {"_BatchNorm": torch.nn.modules.batchnorm._BatchNorm},
            "mmcls": {"_replace": True, "__path__": [str(pkg.parent)]},
            "mmcls.models": {"_replace": True, "__path__": [str(pkg)]},
            "mmcls.models.backbones": {"_replace": True, "__path__": [str(pkg / "backbones")]},
            "mmcls.models.utils": {"_replace": True, "__path__": [str(pkg / "utils")]},
            "mmcls.models.builder": {"_replace": True, "BACKBONES": _Registry()},
            "mmcls.models.backbones.base_backbone": {"_replace": True, "BaseBackbone": torch.nn.Module},
            "mmcls.models.utils.involution_cuda": {"_replace": True, "involution": involution},
            "mmcls.models.utils.involution_naive": None}


_W2_SHIMS["d-li14/involution"] = (_rednet_stubs, _MMClsClassifier)
CASES += [_authors("authors.rednet", "d-li14/involution:mmcls.models.backbones.rednet:RedNet", f"rednet{d}",
                   source_kwargs={"depth": d}, note="mmcv/mmcls stand-ins; their pure-torch involution_naive")
          for d in (26, 38, 50)]


# ParNet: the authors' network (imagenet/timm/models/simplenet_impl/simpnet.py) lives inside their fork of timm; only
# its three files are imported (the fork's package __init__s, which need its old dependencies, are not run), and the
# two imports from timm they use resolve to the installed timm's classifier head (pool, dropout, fc) and an unused
# drop function.
def _parnet_stubs(root: Path) -> dict:
    pkg = root / "imagenet" / "timm" / "models"
    from timm.layers import ClassifierHead
    return {"imagenet": {"_replace": True, "__path__": [str(root / "imagenet")]},
            "imagenet.timm": {"_replace": True, "__path__": [str(pkg.parent)]},
            "imagenet.timm.models": {"_replace": True, "__path__": [str(pkg)]},
            "imagenet.timm.models.simplenet_impl": {"_replace": True, "__path__": [str(pkg / "simplenet_impl")]},
            "timm.models.layers.drop": {"_replace": True, "drop_path": _unused("drop_path"),
                                        "drop_block_fast_2d": _unused("drop_block_fast_2d")},
            "timm.models.layers.classifier": {"_replace": True, "ClassifierHead": ClassifierHead}}


_W2_SHIMS["imankgoyal/NonDeepNetworks"] = (_parnet_stubs, None)
_PARNET = "imankgoyal/NonDeepNetworks:imagenet.timm.models.simplenet_impl.simpnet:SimpNet"
CASES += [_authors("authors.parnet", _PARNET, f"parnet_{n}", source_kwargs={
    "planes": planes, "num_blocks": [5, 6, 6, 1], "dropout_lin": 0.0, "additional_branches": ["swish"]})
    for n, planes in (("m", [128, 256, 512, 2048]), ("l", [160, 320, 640, 2560]))]


# --- W1: the authors' CNN / re-parameterizable models (visionblocks/weights/authors_cnn.py) -------------------------
# ECA-Net: their ResNet ends with AvgPool2d(7) (224 input); the released ECA-Net50 has kernel sizes 3, 5, 5, 7.
CASES += [_authors("authors.eca", "BangguWu/ECANet:models.eca_resnet:eca_resnet50", "eca_resnet50", size=224,
                   source_kwargs={"k_size": [3, 5, 5, 7]}, stride_3x3=True, eca_kernel_sizes=(3, 5, 5, 7))]
# SCNet: compared at 224, where the K2 pooling (AvgPool2d(4, 4)) sees 56, 28, 14 and 7 pixel maps (the last two floor)
CASES += [_authors("authors.scnet", "MCG-NKU/SCNet:scnet:scnet50", "scnet50", size=224)]
# DBB: their ResNet-18 picks its conv-BN unit from a module global (convnet_utils.switch_conv_bn_impl); their
# modules are imported afresh (another checkout may have a "resnet" or "acb" module).
_W1_DBB = "DingXiaoH/DiverseBranchBlock:resnet:create_Res18"
_W2_SHIMS["DingXiaoH/DiverseBranchBlock"] = ({m: None for m in ("convnet_utils", "diversebranchblock", "acb",
                                                                "dbb_transforms")}, None)
_W2_PATCH[_W1_DBB] = lambda mod: sys.modules["convnet_utils"].switch_conv_bn_impl("DBB")
CASES += [_authors("authors.dbb", _W1_DBB, "dbb_resnet18"),
          Case("authors.dbb", "authors", _W1_DBB, "dbb_resnet18", {"deploy": True}, folded=True)]
# ACNet: create_ResNet18(cfg, builder) with their ACNetBuilder; at their HEAD the builder passes use_last_bn=False to an
# ACBlock that no longer takes it (the shim drops it: no last BN, as False asks); their GAP is AvgPool2d(7) (224).
_W1_ACNET = "DingXiaoH/ACNet:base_model.resnet:create_ResNet18"


def _w1_acnet_patch(mod: types.ModuleType, deploy: bool = False) -> None:
    import importlib
    ab = importlib.import_module("acnet.acnet_builder")
    block = ab.ACBlock

    def acblock(*args, use_last_bn=False, **kwargs):
        assert not use_last_bn
        return block(*args, **kwargs)

    ab.ACBlock = acblock
    build = mod.create_ResNet18
    mod.create_ResNet18 = lambda: build(types.SimpleNamespace(deps=None), ab.ACNetBuilder(base_config=None, deploy=deploy))


_W2_SHIMS["DingXiaoH/ACNet"] = ({m: None for m in ("builder", "acnet", "acnet.acb", "acnet.acnet_builder", "custom_layers",
                                                   "custom_layers.flatten_layer", "custom_layers.se_block")}, None)
_W2_PATCH[_W1_ACNET] = _w1_acnet_patch
CASES += [_authors("authors.acnet", _W1_ACNET, "acnet_resnet18", size=224),
          Case("authors.acnet", "authors", _W1_ACNET, "acnet_resnet18", {"deploy": True}, size=224, folded=True)]
# RepMLPNet: their fold is RepMLPNet.locality_injection() (RepMLPBlock.local_inject), named switch_to_deploy here.
_W1_REPMLP = "DingXiaoH/RepMLP:repmlpnet:create_RepMLPNet_T224"
_W2_PATCH[_W1_REPMLP] = lambda mod: setattr(mod.RepMLPBlock, "switch_to_deploy", mod.RepMLPBlock.local_inject)
CASES += [_authors("authors.repmlpnet", _W1_REPMLP, "repmlpnet_t224", size=224),
          Case("authors.repmlpnet", "authors", _W1_REPMLP, "repmlpnet_t224", {"deploy": True}, size=224, folded=True)]
# CoResNet: their models/ package imports div.download_from_url (requests), used only for pretrained=True.
_W2_SHIMS["iduta/coconv"] = ({"models": None, "div": {"_replace": True},
                              "div.download_from_url": {"_replace": True, "download_from_url": _unused("download_from_url")}},
                             None)
CASES += [_authors("authors.coresnet", "iduta/coconv:models.coresnet:coresnet50", "coconv_resnet50")]
_W2_SHIMS["murufeng/EPSANet"] = ({"models": None}, None)
CASES += [_authors("authors.epsanet", "murufeng/EPSANet:models.epsanet:epsanet50", "epsanet50_small")]


# MobileViT: ml-cvnets builds its networks from an options namespace (their config/classification/imagenet/
# mobilevit.yaml's model options); their top-level packages have generic names, imported afresh.
_W2_SHIMS["apple/ml-cvnets"] = ({name: None for name in ("cvnets", "utils", "common", "options", "data", "loss_fn",
                                                           "metrics", "engine", "optim")}, None)


def _cvnets_defaults():
    import argparse

    from cvnets import modeling_arguments  # their model options and defaults (not the data/training ones)
    return modeling_arguments(argparse.ArgumentParser()).parse_args([])


_W2_OPTS["apple/ml-cvnets"] = _cvnets_defaults


def _cvnets_opts(mode: str) -> dict:
    return {"model.classification.name": "mobilevit", "model.classification.n_classes": 1000,
            "model.classification.mit.mode": mode, "model.classification.mit.number_heads": 4,
            "model.classification.mit.no_fuse_local_global_features": False,
            "model.classification.mit.conv_kernel_size": 3, "model.classification.activation.name": "swish",
            "model.normalization.name": "batch_norm", "model.normalization.momentum": 0.1,
            "model.activation.name": "swish", "model.layer.global_pool": "mean",
            "model.layer.conv_init": "kaiming_normal", "model.layer.linear_init": "trunc_normal",
            "model.layer.linear_init_std_dev": 0.02}


CASES += [_authors("authors.mobilevit", "apple/ml-cvnets:cvnets.models.classification.mobilevit:MobileViT",
                   f"mobilevit_{ours}", source_kwargs={"opts": _cvnets_opts(mode)})
          for mode, ours in (("xx_small", "xxs"), ("x_small", "xs"), ("small", "s"))]

CASES += [_authors("authors.mobilevit", "apple/ml-cvnets:cvnets.models.classification.mobilevit_v2:MobileViTv2",
                   f"mobilevitv2_{ours}", source_kwargs={"opts": dict(
                       _cvnets_opts("small"), **{"model.classification.name": "mobilevit_v2",
                                                 "model.classification.mitv2.width_multiplier": width,
                                                 "model.classification.mitv2.attn_norm_layer": "layer_norm_2d",
                                                 "model.normalization.name": "batch_norm"})})
          for width, ours in ((0.5, "050"), (1.0, "100"), (2.0, "200"))]


# --- BAM: the authors' ResNet-50 + BAM (visionblocks/weights/authors_cnn.py, authors.bam) ----------------------------
# Their ChannelGate.__init__ reads an undefined module global (``self.gate_activation = gate_activation``: a
# NameError at their HEAD; the attribute is never used): the patch defines it as None in their MODELS.bam.  Their
# channel gate pools H x H windows (a global average on square inputs only) and their ResNet ends with AvgPool2d(7):
# compared at 224 x 224, as the CBAM case of the same repository.
_BAM_SPEC = "Jongchan/attention-module:MODELS.model_resnet:ResidualNet"
_W2_PATCH[_BAM_SPEC] = lambda mod: setattr(sys.modules["MODELS.bam"], "gate_activation", None)
CASES += [_authors("authors.bam", _BAM_SPEC, "bam_resnet50", size=224,
                   source_kwargs={"network_type": "ImageNet", "depth": 50, "num_classes": 1000, "att_type": "BAM"},
                   stride_3x3=True, stage_attn_kwargs={"layout": "authors"})]


if __name__ == "__main__":
    sys.exit(main())
