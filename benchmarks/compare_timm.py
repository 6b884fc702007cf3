"""Side by side with timm: the blocks and models both libraries have, computing the same function.

    .venv-integration/bin/python benchmarks/compare_timm.py [--only se,resnet50] [--repeats 15] [--min-time 1]
        [--size 224] [--out docs/benchmarks_timm.md]

Needs timm (the integration environment ``.venv-integration`` has timm 1.0.31; visionblocks is imported from this
checkout, nothing is installed).  For each pair, timm's module is built and configured to compute the same
function as ours (the configuration is in the table), timm's weights (randomised away from their
initialisation) are transplanted into ours (blocks: the small key maps below; models: ``visionblocks.weights.
load_checkpoint``, the converters a user loads timm checkpoints with), and the outputs are asserted equal in
float64 (relative to the largest output, 1e-6) in eval and, for blocks, in training mode, before anything is
timed.  Then, in float32 on ``--threads`` threads (default 2), ``visionblocks.measure.time_callables`` times
ours and timm's alternately in one process: training (forward + backward with a fixed dense output gradient, the
input requiring grad, as inside a network) and eval (forward under ``torch.no_grad``).  Reported per pair: both
medians, ratio = median over the rounds of ours / timm in the same round (< 1: ours is faster) and its spread
(interquartile range of those per-round ratios), and the geometric means of the ratios for blocks and for
models in each mode.

``--device cuda --dtype bfloat16 --channels-last`` times the same pairs on a GPU (the float64 check stays on the
CPU; both sides are then moved to the device and dtype, their convolution weights and 4-d inputs put in
channels-last when asked; each call timed with CUDA events): the report then names the device and setting, and
leaves out the CPU run's summary and kernel analysis, which do not apply.

glibc returns large freed blocks to the system by default, so every big temporary is page-faulted again on each
call; the script re-executes itself with ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set (unless
they are set already, or ``--no-malloc-env``) and prints which applies.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn as nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
import visionblocks as vb  # noqa: E402
from visionblocks import measure  # noqa: E402

__all__ = ["Pair", "PAIRS", "transplant", "rel_diff", "ratio_stats", "geomean", "markdown", "keep_fuse_section",
           "kernel_census", "census_difference", "main"]

B = 8
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "1000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000"}
TOL = 1e-6
CHECK_SIZE = 64  # models are checked at this size (fixed-size token models at theirs), timed at --size


@dataclass
class Pair:
    name: str                                   # row label (our registry name)
    kind: str                                   # "block" or "model"
    ours: Callable[[], nn.Module]
    timm: Callable[[], nn.Module]               # timm's module, configured to compute our function
    shape: tuple                                # block input (without batch); model: None (square images)
    config: str = ""                            # how timm's side is configured
    timm_in: Callable[[torch.Tensor], torch.Tensor] | None = None  # our input -> timm's layout (outside timing)
    timm_out: Callable[[torch.Tensor], torch.Tensor] | None = None  # timm's output -> our layout (check only)
    order: Callable[[list[str]], list[str]] | None = None           # timm's keys in our registration order
    size_kwargs: Callable[[int], tuple[dict, dict]] | None = None  # models built for one input size: --size ->
    #                                                                  (our kwargs, timm's kwargs)
    multiple: int = 1                           # models whose input size must be a multiple of this


# ------------------------------------------------------------------------------------------- timm's side
def _timm():
    try:
        import timm
    except ImportError:
        raise SystemExit("timm is not installed: run with .venv-integration/bin/python, or "
                         "pip install 'visionblocks[timm]'")
    return timm


def _tb(path: str, cls: str, *args, **kwargs) -> Callable[[], nn.Module]:
    """A timm class, imported when the pair is built."""
    def make():
        import importlib
        _timm()
        return getattr(importlib.import_module(path), cls)(*args, **kwargs)
    return make


def _tm(name: str, **kwargs) -> Callable[..., nn.Module]:
    return lambda **kw: _timm().create_model(name, pretrained=False, **kwargs, **kw)


def _ob(name: str, *args, **kwargs) -> Callable[[], nn.Module]:
    return lambda: vb.create_block(name, *args, **kwargs)


def _om(name: str, **kwargs) -> Callable[..., nn.Module]:
    return lambda **kw: vb.create_model(name, **kwargs, **kw)


def _sgu_eps(make: Callable[[], nn.Module], eps: float = 1e-6) -> Callable[[], nn.Module]:
    """timm's spatial gating unit normalises with LayerNorm eps 1e-5, ours (and its block norms) 1e-6."""
    def build(**kw):
        m = make(**kw)
        for mod in m.modules():
            if type(mod).__name__ == "SpatialGatingUnit":
                mod.norm.eps = eps
        return m
    return build


def _stage_block(model: str, stage: int, index: int = -1) -> Callable[[], nn.Module]:
    """A block of a timm network as the network configures it (activations, norms)."""
    return lambda: _tm(model)().stages[stage][index]


def _mbconv_timm():
    from timm.models._efficientnet_blocks import InvertedResidual, SqueezeExcite
    return InvertedResidual(64, 64, 3, exp_ratio=6, act_layer=nn.SiLU,
                            se_layer=partial(SqueezeExcite, rd_channels=16))


def _img_size(size: int) -> tuple[dict, dict]:
    return {"img_size": size}, {"img_size": size}


def _repvgg_order(keys: list[str]) -> list[str]:
    # ours registers the identity BN last (body.conv_kxk, body.conv_1x1, body.identity), timm first
    return [k for k in keys if not k.startswith("identity.")] + [k for k in keys if k.startswith("identity.")]


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


_L = "timm.layers"
PAIRS: list[Pair] = [
    # ---- blocks (batch 8; attention gates and convolutions at ResNet stage 2/3 width 256 at 28x28, others at the
    # stage of the network they come from)
    Pair("se", "block", _ob("se", 256), _tb(_L, "SEModule", 256), (256, 28, 28), "SEModule(256), r=16"),
    Pair("eca", "block", _ob("eca", 256), _tb(_L, "EcaModule", 256), (256, 28, 28), "EcaModule(256): adaptive k=5"),
    Pair("cbam", "block", _ob("cbam", 256), _tb(_L + ".cbam", "CbamModule", 256, mlp_bias=True), (256, 28, 28),
         "CbamModule(256, mlp_bias=True): the authors' MLP has biases"),
    Pair("sk", "block", _ob("selective_kernel_conv", 256),
         _tb(_L, "SelectiveKernel", 256, 256, groups=32, rd_channels=32, split_input=False), (256, 28, 28),
         "SelectiveKernel(256, groups=32, rd_channels=32, split_input=False): SKNet's M=2 (3x3, 3x3 dilation 2), "
         "G=32, d=max(C/16, 32)"),
    Pair("split_attention_conv", "block", _ob("split_attention_conv", 256, 256, 3),
         _tb(_L, "SplitAttn", 256, 256, 3, radix=2, norm_layer=nn.BatchNorm2d), (256, 28, 28),
         "SplitAttn(256, 256, 3, radix=2, norm_layer=BatchNorm2d)"),
    Pair("coord_attention", "block", _ob("coord_attention", 256), _tb(_L + ".coord_attn", "CoordAttn", 256,
                                                                       rd_channels=8, bias=True), (256, 28, 28),
         "CoordAttn(256, rd_channels=8, bias=True): the paper's r=32, convs with biases"),
    Pair("outlook_attention", "block", _ob("outlook_attention", 192, num_heads=6, stride=2),
         _tb("timm.models.volo", "OutlookAttention", 192, 6, stride=2), (192, 28, 28),
         "OutlookAttention(192, 6, stride=2): VOLO-D1's outlookers (timm takes NHWC, converted outside the timing)",
         timm_in=_nhwc, timm_out=_nchw),
    Pair("mobilevit_attention", "block",
         _ob("mobilevit_attention", 96, transformer_dim=144, ffn_dim=288, num_layers=2, num_heads=4, patch_size=2),
         _stage_block("mobilevit_s", 2), (96, 28, 28),
         "MobileVitBlock of timm's mobilevit_s, stage 3 (96 channels, transformer_dim=144, depth 2, patch 2, SiLU)"),
    Pair("mobilevitv2_attention", "block",
         _ob("mobilevitv2_attention", 256, transformer_dim=128, ffn_dim=256, num_layers=2, patch_size=2),
         _stage_block("mobilevitv2_100", 2), (256, 28, 28),
         "MobileVitV2Block of timm's mobilevitv2_100, stage 3 (256 channels, transformer_dim=128, depth 2, patch 2)"),
    Pair("ghost_conv", "block", _ob("ghost_conv", 256, 256, 1, 1), _tb("timm.models.ghostnet", "GhostModule", 256, 256),
         (256, 28, 28), "GhostModule(256, 256): ratio 2, 3x3 cheap op, ReLU"),
    Pair("mbconv", "block", _ob("mbconv", 64, 64, kernel_size=3, stride=1, expand_ratio=6), _mbconv_timm,
         (64, 28, 28), "InvertedResidual(64, 64, 3, exp_ratio=6, SiLU, SE rd_channels=16): MBConv6 k3 with "
         "EfficientNet's SE (width in/4)"),
    Pair("repvgg_block", "block", _ob("repvgg_block", 256, 256, 3, 1),
         _tb("timm.models.byobnet", "RepVggBlock", 256, 256),
         (256, 28, 28), "RepVggBlock(256, 256): training form (3x3, 1x1, identity BN branches)", order=_repvgg_order),
    Pair("mixer_block", "block", _ob("mixer_block", 512, 196), _tb("timm.models.mlp_mixer", "MixerBlock", 512, 196),
         (196, 512), "MixerBlock(512, 196): Mixer-S/16"),
    Pair("resmlp_block", "block", _ob("resmlp_block", 384, 196), _tb("timm.models.mlp_mixer", "ResBlock", 384, 196),
         (196, 384), "ResBlock(384, 196): ResMLP-12"),
    Pair("gmlp_block", "block", _ob("gmlp_block", 256, 196),
         _sgu_eps(_tb("timm.models.mlp_mixer", "SpatialGatingBlock", 256, 196, mlp_ratio=6)), (196, 256),
         "SpatialGatingBlock(256, 196, mlp_ratio=6): gMLP-S; its gate's LayerNorm eps set to ours (1e-6; timm 1e-5)"),
    Pair("self_attention", "block", _ob("self_attention", 384, num_heads=6, proj_bias=True),
         _tb("timm.models.vision_transformer", "Attention", 384, 6), (196, 384),
         "vision_transformer.Attention(384, 6): ViT-S/16 tokens; ours with proj_bias=True (timm's has one)"),
    # ---- models (converters of visionblocks.weights)
    Pair("resnet18", "model", _om("resnet18"), _tm("resnet18"), None, "resnet18"),
    Pair("resnet50", "model", _om("resnet50", stride_3x3=True), _tm("resnet50"), None,
         "resnet50; ours stride_3x3=True (timm strides the 3x3, as torchvision)"),
    Pair("se_resnet50", "model", _om("se_resnet50", stride_3x3=True), _tm("seresnet50"), None,
         "seresnet50; ours stride_3x3=True"),
    Pair("sk_resnet50", "model", _om("sk_resnet50"), _tm("skresnext50_32x4d"), None, "skresnext50_32x4d"),
    Pair("resnest50", "model", _om("resnest50"), _tm("resnest50d"), None, "resnest50d"),
    Pair("resnext50_32x4d", "model", _om("resnext50_32x4d"), _tm("resnext50_32x4d"), None, "resnext50_32x4d"),
    Pair("mobilenetv2", "model", _om("mobilenetv2"), _tm("mobilenetv2_100"), None, "mobilenetv2_100"),
    Pair("efficientnet_b0", "model", _om("efficientnet_b0", norm_layer="batchnorm"), _tm("efficientnet_b0"), None,
         "efficientnet_b0; ours norm_layer='batchnorm' (timm's BN eps 1e-5)"),
    Pair("ghostnet_100", "model", _om("ghostnet_100"), _tm("ghostnet_100"), None, "ghostnet_100"),
    Pair("repvgg_a0", "model", _om("repvgg_a0"), _tm("repvgg_a0"), None, "repvgg_a0 (training form, both)"),
    Pair("mobilevit_s", "model", _om("mobilevit_s"), _tm("mobilevit_s"), None,
         "mobilevit_s (at a multiple of 64: at 224 the 7x7 last stage is not a multiple of the 2x2 patches, "
         "which timm resizes and ours does not)", multiple=64),
    Pair("mobilevitv2_100", "model", _om("mobilevitv2_100"), _tm("mobilevitv2_100"), None,
         "mobilevitv2_100 (at a multiple of 64, as mobilevit_s)", multiple=64),
    Pair("mixer_s16", "model", _om("mixer_s16"), _tm("mixer_s16_224"), None, "mixer_s16_224", size_kwargs=_img_size),
    Pair("resmlp_12", "model", _om("resmlp_12"), _tm("resmlp_12_224"), None, "resmlp_12_224", size_kwargs=_img_size),
    Pair("gmlp_s16", "model", _om("gmlp_s16"), _sgu_eps(_tm("gmlp_s16_224")), None,
         "gmlp_s16_224; its gates' LayerNorm eps set to ours (1e-6)", size_kwargs=_img_size),
    Pair("volo_d1", "model", _om("volo_d1"), _tm("volo_d1_224"), None,
         "volo_d1_224; ours pos_size=size/16 (the position embedding of that token grid, as timm's img_size gives)",
         size_kwargs=lambda s: ({"pos_size": s // 16}, {"img_size": s})),
]


# ------------------------------------------------------------------------------------------- same function
def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Move every tensor away from its initialisation (identity BN statistics, zero-initialised layers), keeping
    activations at a sane scale, so that a transplant that misses or swaps a tensor shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=g, dtype=t.dtype)
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(noise * 0.1)
            elif t.ndim <= 1 or t.numel() == t.shape[-1]:
                t.add_(noise * 0.1)
            elif float(t.std()) < 1e-3:
                t.copy_(noise * 0.02)
    return module


def transplant(ours: nn.Module, theirs: nn.Module, order: Callable[[list[str]], list[str]] | None = None) -> None:
    """Load ``theirs``' state dict into ``ours`` by position (in ``order`` of their keys): the blocks register the
    same tensors in the same order under other names; a tensor of the same number of elements but another shape
    (a 1x1 conv weight for a linear's, a (1, 1, C) affine for a (C,)) is reshaped.  Shapes are checked."""
    mine, src = ours.state_dict(), theirs.state_dict()
    keys = order(list(src)) if order else list(src)
    if len(keys) != len(mine):
        raise AssertionError(f"{len(mine)} tensors in ours, {len(keys)} in timm's")
    new = {}
    for (k, v), tk in zip(mine.items(), keys):
        t = src[tk]
        if t.numel() != v.numel():
            raise AssertionError(f"ours {k} {tuple(v.shape)} <- timm {tk} {tuple(t.shape)}")
        new[k] = t.reshape(v.shape).clone()
    ours.load_state_dict(new, strict=True)


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-30))


def _outputs(m: nn.Module, x: torch.Tensor, adapt=None, back=None) -> torch.Tensor:
    out = m(adapt(x) if adapt else x)
    out = measure.flatten_outputs(out)[0]
    return back(out) if back else out


def check_same(p: Pair, ours: nn.Module, theirs: nn.Module, size: int) -> float:
    """Transplant timm's (randomised) weights into ours, then the largest relative output difference in float64
    (eval; blocks also in training mode).  Raises when above ``TOL`` (or when ours matched before loading, which
    would mean the check cannot fail)."""
    randomise(theirs)
    ours.double().eval()
    theirs.double().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, *_shape(p, size), generator=g, dtype=torch.float64)
    with torch.no_grad():
        ref = _outputs(theirs, x, p.timm_in, p.timm_out)
        control = rel_diff(ref, _outputs(ours, x))
        if p.kind == "model":
            from visionblocks.weights import load_checkpoint
            load_checkpoint(ours, theirs.state_dict(), strict=True)
        else:
            transplant(ours, theirs, p.order)
        diffs = [rel_diff(ref, _outputs(ours, x))]
        if p.kind == "block":  # training mode: batch statistics
            ours.train(), theirs.train()
            diffs.append(rel_diff(_outputs(theirs, x, p.timm_in, p.timm_out), _outputs(ours, x)))
    if control <= 1e3 * TOL:
        raise AssertionError(f"{p.name}: ours matched timm before the transplant ({control:.1e})")
    if max(diffs) > TOL:
        raise AssertionError(f"{p.name}: outputs differ after the transplant: {max(diffs):.2e} > {TOL}")
    ours.float(), theirs.float()
    return max(diffs)


def _shape(p: Pair, size: int) -> tuple:
    if p.kind == "block":
        return p.shape
    return (3, size, size)


def _check_size(p: Pair, size: int) -> int:
    return size if p.size_kwargs or p.multiple > 1 else min(size, CHECK_SIZE)


# ------------------------------------------------------------------------------------------- timing
def ratio_stats(t: measure.Timings, num: str, den: str) -> tuple[float, float, float]:
    """(median, first quartile, third quartile) over the rounds of ``num``/``den`` in the same round."""
    r = sorted(a / b for a, b in zip(t.ms[num], t.ms[den]))
    if len(r) < 2:
        return r[0], r[0], r[0]
    q = statistics.quantiles(r, n=4)
    return statistics.median(r), q[0], q[2]


def geomean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def time_pair(p: Pair, ours: nn.Module, theirs: nn.Module, size: int, repeats: int, min_time: float,
              modes: tuple[str, ...] = ("train", "eval"), device: str = "cpu", dtype: torch.dtype = torch.float32,
              channels_last: bool = False) -> dict:
    """Both sides timed alternately in each mode; the modules are already on ``device`` in ``dtype`` (and
    channels-last when ``channels_last``)."""
    row: dict = {}
    x = torch.randn(B, *_shape(p, size), device=device, dtype=dtype)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    xt = p.timm_in(x) if p.timm_in else x
    for mode in modes:
        if mode == "train":
            ours.train(), theirs.train()
            steps = {"ours": measure.TrainStep(ours, (x.clone().requires_grad_(),)),
                     "timm": measure.TrainStep(theirs, (xt.clone().requires_grad_(),))}
            t = measure.time_callables(steps, rounds=repeats, min_time=min_time, device=device,
                                       reset={k: s.reset for k, s in steps.items()})
        else:
            ours.eval(), theirs.eval()

            def run(m, inp):
                with torch.no_grad():
                    m(inp)
            t = measure.time_callables({"ours": partial(run, ours, x), "timm": partial(run, theirs, xt)},
                                       rounds=repeats, min_time=min_time, device=device)
        med, q1, q3 = ratio_stats(t, "ours", "timm")
        row[mode] = {"ours": t.median("ours"), "timm": t.median("timm"), "ratio": med, "q1": q1, "q3": q3,
                     "rounds": t.rounds}
    return row


# ------------------------------------------------------------------------------------------- kernel census
def kernel_census(fn: Callable[[], object]) -> "collections.Counter[tuple[str, str]]":
    """The ATen kernels one call of ``fn`` runs: a count of (operator, input shapes) over the profiler's leaf
    events (operators that call no other operator: the kernels that do the work, forward and backward)."""
    import collections

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    out: collections.Counter = collections.Counter()
    for e in prof.events():
        if e.name.startswith("aten::") and not e.cpu_children and e.name not in _LAYOUT_OPS:
            out[(e.name, str([list(s) for s in e.input_shapes if s]))] += 1
    return out


# metadata-only operators (no data moved): left out of the census
_LAYOUT_OPS = {"aten::empty", "aten::empty_strided", "aten::as_strided", "aten::view", "aten::_unsafe_view",
               "aten::detach", "aten::resolve_conj", "aten::resolve_neg", "aten::lift_fresh", "aten::alias",
               "aten::_reshape_alias", "aten::set_", "aten::zeros_like", "aten::empty_like"}


def census_difference(ours: "collections.Counter", theirs: "collections.Counter", limit: int = 4) -> str:
    """"identical" or a short list of the kernels only one side runs."""
    only_ours, only_theirs = ours - theirs, theirs - ours
    if not only_ours and not only_theirs:
        return f"identical ({sum(ours.values())} kernels)"

    def fmt(c):
        items = sorted(c.items(), key=lambda kv: -kv[1])[:limit]
        more = len(c) - len(items)
        return ", ".join(f"{n}x {k[0][6:]}{k[1]}" for k, n in items) + (f" +{more} more" if more > 0 else "")
    return f"only ours: {fmt(only_ours) or '-'}; only timm: {fmt(only_theirs) or '-'}"


def census_pair(p: "Pair", ours: nn.Module, theirs: nn.Module, size: int, mode: str) -> str:
    """The kernel census of ours against timm's in ``mode`` (one eval forward, or one training step)."""
    x = torch.randn(2, *_shape(p, size))
    xt = p.timm_in(x) if p.timm_in else x
    res = []
    for m, inp in ((ours, x), (theirs, xt)):
        if mode == "train":
            m.train()
            step = measure.TrainStep(m, (inp.clone().requires_grad_(),))
            step()                                   # allocates the output gradient outside the census
            res.append(kernel_census(step))
        else:
            m.eval()

            def run(m=m, inp=inp):
                with torch.no_grad():
                    m(inp)
            res.append(kernel_census(run))
    return census_difference(*res)


# ------------------------------------------------------------------------------------------- report
# Why a row is not ahead, from profiles of the pairs (kept here so that the generated table carries them).
REASONS: dict[str, str] = {
    "split_attention_conv": "the census differs only in ops on the pooled (B, C) vectors (ours copies two of them, "
    "timm restrides its (B, C, 1, 1) maps); the grouped convolution, BN, ReLU, pooling and weighted sum are the "
    "same kernels",
    "mobilevitv2_attention": "ours multiplies by the broadcast (B, d, P, 1) context where timm expands it first, and "
    "without autograd works in place; the convolutions, GroupNorms and the rest are the same kernels",
    "mbconv": "the census differs only in the SE's ops on (B, C) vectors (ours as matrix products on vectors, timm as "
    "1x1 convolutions on 1x1 maps)",
    "resnet18": "ours adds the residual out of place (timm in place, into the branch's output: a tensor autograd "
    "may have saved, or a forward hook on the branch's last layer or attention block holds, which the sum would "
    "overwrite); the other kernels are the same",
    "mobilenetv2": "the same kernels in eval (both add the residual out of place)",
    "repvgg_a0": "ours adds the third branch in place into the sum of the first two (timm: two out-of-place sums); "
    "the other kernels are the same",
    "mobilevitv2_100": "as mobilevitv2_attention (broadcast context); under autograd ours keeps SiLU out of place "
    "(in place, autograd would copy its input)",
    "resmlp_12": "the same work: ours transposes the activations for the token GEMMs where timm's F.linear copies "
    "the transposed input (both a (B, N, C) copy); timm's extra dropouts are no-ops",
    "sk_resnet50": "ours runs the dilated branch of each SK convolution on a channels-last copy (oneDNN's NCHW "
    "grouped dilated convolution has a backward up to 10x slower under load, see selective_kernel_conv), which "
    "costs a copy of the input and a reorder of the weights per call; timm runs it NCHW",
}
# A paragraph under the introduction: what the table shows as a whole (written for the committed run).
SUMMARY = (
    "**Summary of the committed run** (quiet machine, load average 1.1-1.9). No pair is measurably slower than "
    "timm: every ratio at or above 1 has a [q1, q3] that includes 1, and its row names the kernels that differ "
    "(the census: the profiler's leaf ATen operators with their shapes, batch 2, ours against timm's). Ahead by "
    "construction: the memory-bound gates (se, eca, cbam, coord_attention: 0.62-0.76 train, 0.68-0.85 eval), "
    "outlook_attention (0.61 / 0.43: windows gathered by strided copies and summed back by their adjoint, the "
    "softmax on the contiguous window axis, where timm runs im2col/col2im and a softmax over a 9-wide strided "
    "axis), gMLP (0.90 / 0.85), SK (0.87 / 0.88) and the models built on them. Level by construction: where both "
    "libraries run the same ATen kernels in the same order (convolution-BN-activation networks, the ViT attention, "
    "the Mixer and ResMLP blocks) the ratio is 1 within the spread, and no change above the kernels can move it; "
    "for that reason the geometric means (blocks 0.86 / 0.86, models 0.96 / 0.97) stay above the 0.8 the "
    "performance issue asks for. The inference form below (`visionblocks.fuse`) is where the CNNs get ahead of "
    "timm's eval: fused / timm 0.85-0.95 on ResNet-18/50, MobileNetV2 and EfficientNet-B0.")
FUSE_SECTION = "## Inference form: fuse"  # written by benchmarks/fuse_latency.py --out; kept when regenerating


def setting_text(device: str = "cpu", dtype: torch.dtype = torch.float32, channels_last: bool = False) -> str:
    """How the timed run computes: ``float32``, or e.g. ``bfloat16 on cuda, channels-last``."""
    text = str(dtype).replace("torch.", "")
    if device != "cpu":
        text += f" on {device}"
    return text + (", channels-last (convolution weights and 4-d inputs)" if channels_last else "")


def markdown(rows: list[dict], command: str, description: str, versions: str, size: int,
             setting: str = "float32") -> str:
    """The report.  ``setting`` (:func:`setting_text`): the committed CPU run's summary paragraph goes only into
    the default float32 CPU report it was written for."""
    out = ["# visionblocks vs timm" + ("" if setting == "float32" else f" ({setting})"), "",
           "Generated by `benchmarks/compare_timm.py`. Each pair computes the same function: timm's module is "
           "configured as stated, its randomised weights are transplanted into ours and the float64 outputs are "
           "asserted equal (1e-6 relative to the largest output) before timing. Then both run alternately in one "
           "process (`visionblocks.measure.time_callables`): **train** = forward + backward (dense fixed output "
           "gradient, input requires grad), **eval** = forward under `torch.no_grad`, " + setting + ". Times are medians "
           "in ms; **ratio** = median over the rounds of ours / timm in the same round (< 1: ours is faster), "
           "[q1, q3] its interquartile range.", "",
           *_load_caveat(),
           *([SUMMARY, ""] if SUMMARY and setting == "float32" else []),
           f"Command: `{command}`", "", f"Machine: {description}", "", f"Versions: {versions}", "",
           f"Input: batch {B}; blocks at the shape given (C, H, W or tokens, C); models at {size}x{size} (Mixer, "
           "ResMLP, gMLP and VOLO, whose token count is part of the network, built for that size on both sides).",
           ""]
    for kind in ("block", "model"):
        sel = [r for r in rows if r["kind"] == kind and "error" not in r]
        if not sel:
            continue
        means = ", ".join(f"**{mode} {geomean([r[mode]['ratio'] for r in sel if mode in r]):.3f}**"
                          for mode in ("train", "eval") if any(mode in r for r in sel))
        out += [f"## {kind.capitalize()}s", "", f"Geometric mean of ours / timm over {len(sel)} {kind}s: {means}.", ""]
        table = []
        for r in rows:
            if r["kind"] != kind:
                continue
            if "error" in r:
                table.append([r["name"], r.get("shape", "—")] + ["—"] * 6 + [f"**{r['error']}**"])
                continue
            cells = [r["name"], r["shape"]]
            for mode in ("train", "eval"):
                m = r.get(mode)
                cells += ([f"{m['ours']:.2f}", f"{m['timm']:.2f}", f"{m['ratio']:.3f} [{m['q1']:.2f}, {m['q3']:.2f}]"]
                          if m else ["—"] * 3)
            behind = [mode for mode in ("train", "eval") if r.get(mode) and r[mode]["ratio"] >= 1.0]
            note = r["config"]
            if behind:
                note += f". **Not ahead ({', '.join(behind)})**: {_reason(r, behind, setting)}"
            cells.append(note)
            table.append(cells)
        out.append(measure.format_table(
            table, [kind, "input", "train ours", "train timm", "train ratio", "eval ours", "eval timm", "eval ratio",
                    "timm configuration; reason when not ahead"], markdown=True))
        out.append("")
    return "\n".join(out)


def _reason(row: dict, behind: list[str], setting: str = "float32") -> str:
    """Per mode not ahead: whether both sides run the same ATen kernels (the census, batch 2), and whether the
    run resolves the difference at all (the per-round ratio's [q1, q3] includes 1); then the analysis, if any."""
    parts = []
    for m in behind:
        spread = ("its [q1, q3] includes 1: no measurable difference in this run" if row[m]["q1"] < 1.0
                  else "beyond the run's spread")
        census = row[m].get("census")
        parts.append(f"{m}: kernels {census}; {spread}" if census else f"{m}: {spread}")
    if row["name"] in REASONS and setting == "float32":  # the analyses of the CPU float32 run
        parts.append(REASONS[row["name"]])
    return "; ".join(parts)


def _load_caveat() -> list[str]:
    """A warning paragraph when the machine is oversubscribed (load average above the CPU count)."""
    load, cpus = (os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0), os.cpu_count() or 1
    if load <= cpus:
        return []
    return [f"**Caveat: this run shared the machine (load average {load:.1f} on {cpus} CPUs when the report was "
            "written).** Two-thread kernels then wait on descheduled threads at every OpenMP barrier, times are tens "
            "of times those of a quiet machine, and ratios near 1 (and wide [q1, q3]) are within the noise: re-run "
            "such a row on a quiet machine before believing it.", ""]


def keep_fuse_section(text: str, path: str) -> str:
    """``text`` followed by the "Inference form: fuse" section of the file at ``path`` (if any)."""
    if os.path.exists(path):
        old = open(path).read()
        i = old.find(FUSE_SECTION)
        if i >= 0:
            end = old.find("\n## ", i + len(FUSE_SECTION))
            text = text.rstrip("\n") + "\n\n" + (old[i:end + 1] if end >= 0 else old[i:])
    return text


def _reexec_with_malloc_env(argv: list[str]) -> None:
    if all(k in os.environ for k in MALLOC) or os.environ.get("VB_COMPARE_TIMM_CHILD"):
        return
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in MALLOC.items()}, "VB_COMPARE_TIMM_CHILD": "1"}
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *argv], env)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated row names (default: all pairs)")
    ap.add_argument("--kind", choices=("block", "model"), help="only blocks or only models")
    ap.add_argument("--modes", default="train,eval")
    ap.add_argument("--repeats", type=int, default=15, help="timed rounds at least")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed calls per callable at least")
    ap.add_argument("--size", type=int, default=224, help="model input size (the token models are built for it; "
                    "MobileViT needs a multiple of 64)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i] (the float64 check runs on the CPU)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                    help="of the timed run")
    ap.add_argument("--channels-last", action="store_true",
                    help="convolution weights and 4-d inputs channels-last, both sides")
    ap.add_argument("--check-only", action="store_true", help="only assert the outputs equal")
    ap.add_argument("--report-only", action="store_true", help="write --out from the rows in --json, measure nothing")
    ap.add_argument("--no-malloc-env", action="store_true", help="do not re-execute with the malloc thresholds")
    ap.add_argument("--out", help="write the Markdown report here (e.g. docs/benchmarks_timm.md), after every row")
    ap.add_argument("--command-text", help="the Command line of the report (default: this invocation)")
    ap.add_argument("--json", help="append each finished row to this JSON-lines file; rows already in it are not "
                    "measured again (a run split over several processes, or resumed, shares one file)")
    a = ap.parse_args(argv)
    try:
        device = torch.device(a.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"CUDA is not available in this torch ({torch.__version__})")
    except RuntimeError as e:  # one line, exit 2 (as the visionblocks CLI)
        print(f"compare_timm.py: error: --device {a.device}: {str(e).splitlines()[0]}", file=sys.stderr)
        raise SystemExit(2)
    dtype = getattr(torch, a.dtype)
    setting = setting_text(a.device, dtype, a.channels_last)
    if not a.no_malloc_env:
        _reexec_with_malloc_env(argv)
    timm = _timm()
    torch.set_num_threads(a.threads)
    only = set(a.only.split(",")) if a.only else None
    pairs = [p for p in PAIRS if (not only or p.name in only) and (not a.kind or p.kind == a.kind)]
    if only and len(pairs) != len(only):
        raise SystemExit(f"unknown pairs: {sorted(only - {p.name for p in pairs})}")
    print(f"malloc: {measure.malloc_settings()}", flush=True)
    print(measure.machine_description(a.device), flush=True)
    print(f"setting: {setting}", flush=True)
    import json
    done: dict[str, dict] = {}
    if a.json and os.path.exists(a.json):
        with open(a.json) as fh:
            done = {r["name"]: r for r in map(json.loads, filter(str.strip, fh))}
    versions = f"torch {torch.__version__}, timm {timm.__version__}, visionblocks {vb.__version__}"
    command = a.command_text or ("python benchmarks/compare_timm.py " + " ".join(argv)).strip()

    def write(rows):
        if a.out and not a.check_only:
            order = {p.name: i for i, p in enumerate(PAIRS)}
            got = {**done, **{r["name"]: r for r in rows}}
            got.update({p.name: {"name": p.name, "kind": p.kind, "config": p.config, "shape": "—",
                                 "error": "not measured in this run"} for p in pairs if p.name not in got})
            everything = sorted(got.values(), key=lambda r: order[r["name"]])
            text = markdown(everything, command, measure.machine_description(a.device), versions, a.size, setting)
            text = keep_fuse_section(text, a.out)  # read before the file is truncated
            with open(a.out, "w") as fh:
                fh.write(text)

    rows = []
    for p in pairs:
        if (p.name in done and "error" not in done[p.name]) or a.report_only:
            continue
        row = {"name": p.name, "kind": p.kind, "config": p.config}
        s = _shape(p, a.size)
        row["shape"] = "x".join(map(str, s[1:])) if p.kind == "model" else "x".join(map(str, s))
        try:
            torch.manual_seed(0)
            if p.kind == "model" and a.size % p.multiple:
                raise ValueError(f"--size {a.size} is not a multiple of {p.multiple}")
            kw_ours, kw_timm = p.size_kwargs(a.size) if p.size_kwargs else ({}, {})
            ours, theirs = p.ours(**kw_ours), p.timm(**kw_timm)
            if measure.count_params(ours) != measure.count_params(theirs):
                raise AssertionError(f"parameters: ours {measure.count_params(ours)}, timm "
                                     f"{measure.count_params(theirs)}")
            row["diff"] = check_same(p, ours, theirs, _check_size(p, a.size))
            if not a.check_only:
                ours, theirs = ours.to(device, dtype), theirs.to(device, dtype)
                if a.channels_last:
                    vb.to_channels_last(ours), vb.to_channels_last(theirs)
                row.update(time_pair(p, ours, theirs, a.size, a.repeats, a.min_time, tuple(a.modes.split(",")),
                                     a.device, dtype, a.channels_last))
                for mode in ("train", "eval"):       # why a row is not ahead: do both sides run the same kernels?
                    if mode in row and row[mode]["ratio"] >= 1.0 and setting == "float32":
                        row[mode]["census"] = census_pair(p, ours, theirs, _check_size(p, a.size), mode)
        except Exception as e:  # a failing pair is reported, not hidden
            row["error"] = f"{type(e).__name__}: {str(e)[:200]}"
        rows.append(row)
        msg = row.get("error") or f"diff {row['diff']:.1e}" + "".join(
            f"  {m}: ours {row[m]['ours']:.2f} timm {row[m]['timm']:.2f} ms  x{row[m]['ratio']:.3f} "
            f"[{row[m]['q1']:.2f}, {row[m]['q3']:.2f}] ({row[m]['rounds']} rounds)"
            for m in ("train", "eval") if m in row)
        print(f"{p.name:<24} {msg}", flush=True)
        if a.json and not a.check_only:
            with open(a.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")
        write(rows)
    for kind in ("block", "model"):
        for mode in ("train", "eval"):
            rs = [r[mode]["ratio"] for r in rows if r["kind"] == kind and mode in r]
            if rs:
                print(f"geomean {kind}s {mode}: {geomean(rs):.3f} over {len(rs)}")
    write(rows)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
