"""Side by side with fightingcv-attention (the packaged External-Attention-pytorch).

    python benchmarks/compare_fightingcv.py [--threads 2] [--repeats 15] [--names se,cbam] [--out docs/benchmarks.md]

Installs nothing: it needs the optional ``compare`` extra (``pip install 'visionblocks[compare]'``, i.e.
``fightingcv-attention`` and ``einops``).  For each block both libraries provide, it builds theirs and
ours at the same configuration, compares parameter counts (or says why they differ), records where each
fails (at another input size, in backward, at batch 1 in eval mode), and times forward+backward for both
in one process with :func:`visionblocks.measure.time_callables` (paired rounds, alternating order, at least
``--repeats`` rounds and ``--min-time`` seconds), reporting the median of each, the median of the per-round
ratios (peer / ours: > 1 means we are faster) and the geometric mean of the ratios.

A spec's ``inputs`` makes the canonical input (an NCHW map, or tokens for ``nlc`` blocks); ``ours_in`` and
``peer_in`` adapt it to each side's calling convention once, before timing (e.g. the peer's NHWC modules, or
its ``(queries, keys, values)`` signature), so the timings never include a layout conversion.  ``hw``
overrides the module-level H, W for a block that cannot run there (the spec says why).  ``peer_post``
re-configures a peer instance with the peer's own classes where its constructor ignores an argument.
Hand-written analysis lives in ``docs/benchmarks_notes.md``; it is appended to the generated table.
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import visionblocks as vb  # noqa: E402
from visionblocks import measure  # noqa: E402

__all__ = ["Spec", "SPECS", "run", "markdown", "main"]

B, C, H, W = 8, 256, 28, 28
NOTES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "benchmarks_notes.md")


@dataclass
class Spec:
    name: str                                # our registry name
    ours: Callable[[], torch.nn.Module]
    peer: tuple[str, str, Callable[[], dict]]  # module, class, kwargs
    inputs: Callable[[int, int, int], tuple]  # (batch, h, w) -> canonical inputs
    note: str = ""                           # why the parameter counts differ, when they do
    sizes: list = field(default_factory=lambda: [(17, 23)])
    ours_in: Callable[[tuple], tuple] | None = None   # canonical inputs -> our forward's arguments
    peer_in: Callable[[tuple], tuple] | None = None   # canonical inputs -> the peer forward's arguments
    peer_post: Callable | None = None        # (peer module namespace, peer instance) -> peer instance
    hw: tuple[int, int] | None = None        # timing size when the module-level H, W cannot be used


def nchw(c=C):
    return lambda b, h, w: (torch.randn(b, c, h, w),)


def nlc(d=C):
    return lambda b, h, w: (torch.randn(b, h * w, d),)


def qkv(t):          # the peer's attention modules take (queries, keys, values)
    return (t[0], t[0], t[0])


def nhwc(t):         # the peer's outlook / ViP modules take (B, H, W, C)
    return (t[0].permute(0, 2, 3, 1),)


def tokens(t):       # (B, C, H, W) -> (B, H*W, C)
    return (t[0].flatten(2).transpose(1, 2),)


def tokens_qkv(t):
    return qkv(tokens(t))


def _set(**modules):
    """peer_post that replaces sub-modules of the peer instance: name -> (class name, kwargs)."""
    def post(ns, m):
        for attr, (cls, kw) in modules.items():
            setattr(m, attr, getattr(ns, cls)(**kw))
        return m
    return post


def _danet_post(ns, m):
    # the peer's DAModule ignores its arguments (it always builds d_model=512, H=W=7): rebuild its two
    # branches with the peer's own classes at our channels and the input's size
    m.position_attention_module = ns.PositionAttentionModule(d_model=C, kernel_size=3, H=H, W=W)
    m.channel_attention_module = ns.ChannelAttentionModule(d_model=C, kernel_size=3, H=H, W=W)
    return m


def _first_gmlp_layer(ns, m):
    # the peer's only gMLP class is a token-id language model (embedding, layers, vocabulary head); its
    # block is the first Residual(LN, fc1, GELU, SGU, fc2) layer
    return m.gmlp[0]


def _stub_timm():
    """The peer's gfnet module imports ``DropPath, to_2tuple`` from timm only for its network classes; when timm
    is absent, register placeholders so that its ``GlobalFilter`` (which uses neither) can be imported."""
    try:
        importlib.import_module("timm")
    except ImportError:
        import types

        def missing(*args, **kwargs):
            raise RuntimeError("timm is not installed (placeholder registered by compare_fightingcv.py)")
        timm, models, layers = (types.ModuleType(n) for n in ("timm", "timm.models", "timm.models.layers"))
        layers.DropPath = layers.to_2tuple = missing
        timm.models, models.layers = models, layers
        sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})


def _ours_sep_attn():
    from visionblocks.blocks.attention.mobilevitv2_attention import SeparableSelfAttention
    return SeparableSelfAttention(C)


P = "fightingcv_attention."
A, CV, M, R = P + "attention.", P + "conv.", P + "mlp.", P + "rep."
FIXED = "tied to the input size by design in both libraries: the 17x23 check is skipped"
SPECS: list[Spec] = [
    Spec("se", lambda: vb.create_block("se", C), (A + "SEAttention", "SEAttention", lambda: dict(channel=C)),
         nchw(), "the peer's FC layers have no bias (the paper's and ours do: +C/16 + C)"),
    Spec("cbam", lambda: vb.create_block("cbam", C), (A + "CBAM", "CBAMBlock", lambda: dict(channel=C, kernel_size=7)),
         nchw(), "the peer has no BN after the 7x7 conv (the authors' code has it), adds a residual, and its MLP has no bias"),
    Spec("eca", lambda: vb.create_block("eca", C), (A + "ECAAttention", "ECAAttention", lambda: dict(kernel_size=5)),
         nchw(), "the peer's 1-D conv has a bias; its kernel size is fixed by hand (5 = ECA's adaptive size for 256)"),
    Spec("sk", lambda: vb.create_block("sk", C),
         (A + "SKAttention", "SKAttention", lambda: dict(channel=C, kernels=[3, 5], reduction=16, group=32, L=32)),
         nchw(), "peer configured to M=2, G=32, r=16, L=32 like ours; its second branch is a real 5x5 (the paper "
         "uses a 3x3 with dilation 2, as we do), its convs and FCs have biases, its fuse FC has no BN"),
    Spec("bam", lambda: vb.create_block("bam", C),
         (A + "BAM", "BAMBlock", lambda: dict(channel=C, reduction=16, dia_val=1)),
         nchw(), "the peer pads its dilated 3x3 convs by 1 whatever the dilation, so only dia_val=1 keeps the size "
         "(paper: d=4, ours); it has 3 dilated convs (paper: 2), a BN on each hidden FC instead of the channel "
         "branch's output, no BN on the spatial output"),
    Spec("danet", lambda: vb.create_block("danet", C), (A + "DANet", "DAModule", lambda: dict(d_model=C, H=H, W=W)),
         nchw(), "the peer's DAModule ignores its arguments (always 512 channels, 7x7), so its branches are rebuilt "
         "with its own classes at 256 channels and 28x28; it has no C/4 reduction, full-width Q/K/V/O linears in "
         "the position branch and an (HW x HW) output linear in the channel branch (tied to the size), no "
         "alpha/beta residuals, no conv-BN-ReLU after the attentions", peer_post=_danet_post),
    Spec("pyramid_split_attention", lambda: vb.create_block("pyramid_split_attention", C),
         (A + "PSA", "PSA", lambda: dict(channel=C, reduction=16, S=4)),
         nchw(), "the peer keeps its convs and SE blocks in plain Python lists, so they are not registered "
         "(0 parameters, not trained, not moved by .to()); its branches see C/S input channels (the paper's "
         "see all C, grouped 1/4/8/16) and each has its own SE (paper: shared)"),
    Spec("shuffle_attention", lambda: vb.create_block("shuffle_attention", C),
         (A + "ShuffleAttention", "ShuffleAttention", lambda: dict(channel=C, G=64)), nchw()),
    Spec("sge", lambda: vb.create_block("sge", C), (A + "SGE", "SpatialGroupEnhance", lambda: dict(groups=64)), nchw()),
    Spec("double_attention", lambda: vb.create_block("double_attention", C),
         (A + "A2Atttention", "DoubleAttention", lambda: dict(in_channels=C, c_m=C // 4, c_n=C // 4)),
         nchw(), "same parameters; the peer has no residual connection"),
    Spec("triplet_attention", lambda: vb.create_block("triplet_attention", C, kernel_size=7),
         (A + "TripletAttention", "TripletAttention", lambda: dict()), nchw()),
    Spec("coord_attention", lambda: vb.create_block("coord_attention", C, reduction=32),
         (A + "CoordAttention", "CoordAtt", lambda: dict(inp=C, oup=C, reduction=32)), nchw()),
    Spec("polarized_attention_parallel", lambda: vb.create_block("polarized_attention_parallel", C),
         (A + "PolarizedSelfAttention", "ParallelPolarizedSelfAttention", lambda: dict(channel=C)),
         nchw(), "the peer's 1x1 convs have biases (the authors' have none)"),
    Spec("polarized_attention_sequential", lambda: vb.create_block("polarized_attention_sequential", C),
         (A + "PolarizedSelfAttention", "SequentialPolarizedSelfAttention", lambda: dict(channel=C)),
         nchw(), "the peer's 1x1 convs have biases (the authors' have none)"),
    Spec("cot", lambda: vb.create_block("cot", C, kernel_size=3),
         (A + "CoTAttention", "CoTAttention", lambda: dict(dim=C, kernel_size=3)),
         nchw(), "the peer is a simplified CoT: its attention is a softmax over all positions of the k*k-averaged "
         "logits times V (no local k x k aggregation, no share-planes, no GN), factor 4 instead of 2, and no "
         "split-attention fusion of K1 and K2 (the authors' code, ours)"),
    Spec("parnet_attention", lambda: vb.create_block("parnet_attention", C),
         (A + "ParNetAttention", "ParNetAttention", lambda: dict(channel=C)),
         nchw(), "the peer's SSE has no BN on the skip and its FC has a bias; its convs have biases"),
    Spec("residual_attention", lambda: vb.create_block("residual_attention", C, 80, temperatures=(math.inf,), lam=0.1),
         (A + "ResidualAttention", "ResidualAttention", lambda: dict(channel=C, num_class=80, la=0.1)),
         nchw(), "same parameters; both at T = inf (max pooling), the only temperature the peer has (ours: any T, "
         "1 to 8 heads; the paper's default single head is T = 1), 80 classes (COCO), lambda 0.1; ours also "
         "l2-normalises each class's weights (authors' code), the peer does not"),
    Spec("external_attention", lambda: vb.create_block("external_attention", C, memory_units=64),
         (A + "ExternalAttention", "ExternalAttention", lambda: dict(d_model=C, S=64)),
         nlc(), "the peer has no query projection W_q (Algorithm 1 of the paper has it: +C^2 + C)"),
    Spec("self_attention", lambda: vb.create_block("self_attention", C, num_heads=8),
         (A + "SelfAttention", "ScaledDotProductAttention", lambda: dict(d_model=C, d_k=C // 8, d_v=C // 8, h=8, dropout=0.0)),
         nlc(), "the peer's projections have biases (the paper's are plain matrices)", peer_in=qkv),
    Spec("simplified_self_attention", lambda: vb.create_block("simplified_self_attention", C, num_heads=8),
         (A + "SimplifiedSelfAttention", "SimplifiedScaledDotProductAttention", lambda: dict(d_model=C, h=8, dropout=0.0)),
         nlc(), peer_in=qkv),
    Spec("emsa", lambda: vb.create_block("emsa", C, num_heads=4, sr_ratio=2),
         (A + "EMSA", "EMSA", lambda: dict(d_model=C, d_k=C // 4, d_v=C // 4, h=4, dropout=0.0, H=H, W=W, ratio=2)),
         nchw(), "ResT stage-3 setting (C=256, 4 heads, s=2); the peer's H, W are fixed at construction (input "
         "size), it takes tokens", peer_in=tokens_qkv),
    Spec("muse", lambda: vb.create_block("muse", C, num_heads=8),
         (A + "MUSEAttention", "MUSEAttention", lambda: dict(d_model=C, d_k=C // 8, d_v=C // 8, h=8, dropout=0.0)),
         nlc(), "the peer's conv kernels are fixed at 1, 3, 5 (ours: the authors' 3, 15) and it re-creates its gate "
         "Parameter inside forward (an optimizer never sees the new one)", peer_in=qkv),
    Spec("aft_full", lambda: vb.create_block("aft_full", C, 14 * 14),
         (A + "AFT", "AFT_FULL", lambda: dict(d_model=C, n=14 * 14)),
         nlc(), "same parameters. Run at 14x14 tokens: the peer materialises (T, B, T, C) exponentials, 5 GB per "
         "tensor at 28x28; " + FIXED, sizes=[], hw=(14, 14)),
    Spec("aft_simple", lambda: vb.create_block("aft_simple", C),
         (A + "AFT", "AFT_FULL", lambda: dict(d_model=C, n=14 * 14, simple=True)),
         nlc(), "same parameters; the peer's AFT-simple is AFT_FULL(simple=True): a zero (T x T) bias, so it is "
         "still tied to T and materialises (T, B, T, C) exponentials (run at 14x14 tokens like aft_full); ours "
         "is a softmax over the tokens, any length", hw=(14, 14)),
    Spec("outlook_attention", lambda: vb.create_block("outlook_attention", C, num_heads=8, kernel_size=3, stride=1),
         (A + "OutlookAttention", "OutlookAttention",
          lambda: dict(dim=C, num_heads=8, kernel_size=3, padding=1, stride=1, qkv_bias=False, attn_drop=0.0)),
         nchw(), "VOLO-D2 outlooker (C=256, 8 heads, K=3) but at stride 1 in both (VOLO: 2): the peer passes "
         "padding and stride positionally to nn.Unfold(kernel_size, dilation, padding, stride), so only stride 1 "
         "works; same parameters; the peer takes NHWC", peer_in=nhwc),
    Spec("halo_attention", lambda: vb.create_block("halo_attention", C, block_size=8, halo_size=3, num_heads=8, dim_head=16),
         (A + "HaloAttention", "HaloAttention", lambda: dict(dim=C, block_size=8, halo_size=3, dim_head=16, heads=8)),
         nchw(), "the peer's values are dim_head=16 wide per head followed by an output linear 128 -> 256 (HaloNet "
         "has none: the bottleneck's 1x1 follows; ours: C/heads = 32 per head), and its relative tables have "
         "2(b+2h)-1 rows (ours 2(b+h)-1, all offsets a block sees); run at 32x32 "
         "because the peer needs H, W divisible by the block size 8 (ours pads and masks)", hw=(32, 32)),
    Spec("mobilevit_attention",
         lambda: vb.create_block("mobilevit_attention", C, transformer_dim=C, ffn_dim=1024, num_layers=3,
                                 num_heads=4, patch_size=2),
         (A + "MobileViTAttention", "MobileViTAttention", lambda: dict(in_channel=C, dim=C, kernel_size=3, patch_size=2)),
         nchw(), "both at d=256, L=3, FFN 1024, 2x2 patches (the peer's L, FFN and heads are hard-coded); the peer's "
         "attention has 8 heads of 64 (inner width 512, paper: 4 heads of d/4), its convs have biases and no "
         "BN/SiLU, no final LayerNorm"),
    Spec("mobilevitv2_attention", _ours_sep_attn,
         (A + "MobileViTv2Attention", "MobileViTv2Attention", lambda: dict(d_model=C)),
         nchw(), "the peer's class is only the separable self-attention layer, so it is compared with ours "
         "(SeparableSelfAttention of our block) over the H*W tokens; same parameters",
         ours_in=lambda t: (t[0].flatten(2).unsqueeze(2),), peer_in=tokens),
    Spec("ufo_attention", lambda: vb.create_block("ufo_attention", C, num_heads=8),
         (A + "UFOAttention", "UFOAttention", lambda: dict(d_model=C, d_k=C // 8, d_v=C // 8, h=8, dropout=0.0)),
         nlc(), "ours has one gamma per head for each of the two XNorms (the paper's two normalisations), the peer "
         "shares one (+8)", peer_in=qkv),
    Spec("global_filter", lambda: vb.create_block("global_filter", C, h=H, w=W // 2 + 1),
         (A + "gfnet", "GlobalFilter", lambda: dict(dim=C, h=H, w=W // 2 + 1)),
         nchw(), "same parameters; the peer takes square token maps of its fixed size (ours resizes the filter); its "
         "module imports timm for other classes, so a placeholder timm is registered when it is absent",
         peer_in=tokens),
    Spec("vip", lambda: vb.create_block("vip", C, (32, 32)),
         (A + "ViP", "WeightedPermuteMLP", lambda: dict(dim=C, seg_dim=32)),
         nchw(), "same parameters. Run at 32x32: the permutation needs C divisible by H (ViP-S/7 at 224 has "
         "32x32 tokens); the peer's reweighting MLP has dropout 0.1 (not configurable); it takes NHWC; " + FIXED,
         peer_in=nhwc, sizes=[], hw=(32, 32)),
    Spec("s2_attention", lambda: vb.create_block("s2_attention", C),
         (A + "S2Attention", "S2Attention", lambda: dict(channels=C)),
         nchw(), "the peer's split attention is hard-coded to 512 channels, so it is rebuilt with its own class at "
         "256", peer_post=_set(split_attention=("SplitAttention", dict(channel=C, k=3)))),
    Spec("depthwise_separable_conv", lambda: vb.create_block("depthwise_separable_conv", C, C, 3, 1,
                                                             norm_layer=None, act_layer=None),
         (CV + "DepthwiseSeparableConvolution", "DepthwiseSeparableConvolution",
          lambda: dict(in_ch=C, out_ch=C, kernel_size=3, stride=1, padding=1)),
         nchw(), "same configuration and parameters: the peer's block is the two bare convolutions with biases, "
         "so ours runs with norm_layer=None, act_layer=None (its default is MobileNets' BN-ReLU after each "
         "convolution, which adds about 60% to forward+backward here)"),
    Spec("mbconv", lambda: vb.create_block("mbconv", C, C, kernel_size=3, stride=1, expand_ratio=6, se_ratio=0.25),
         (CV + "MBConv", "MBConvBlock",
          lambda: dict(ksize=3, input_filters=C, output_filters=C, expand_ratio=6, stride=1, image_size=H)),
         nchw(), "MBConv6 k3 SE 0.25 in both; the peer's padding is computed for a fixed image size"),
    Spec("involution", lambda: vb.create_block("involution", C, C, 7, 1),
         (CV + "Involution", "Involution", lambda: dict(kernel_size=7, in_channel=C, stride=1, group=C // 16, ratio=4)),
         nchw(), "RedNet setting in both (K=7, 16 channels per group, r=4); the peer's reduction conv has a bias "
         "before its BN (+C/4)"),
    Spec("dynamic_conv", lambda: vb.create_block("dynamic_conv", C, C, 3, 1),
         (CV + "DynamicConv", "DynamicConv", lambda: dict(in_planes=C, out_planes=C, kernel_size=3, stride=1, padding=1,
                                                          K=4, temprature=30, ratio=4)),
         nchw(), "K=4, r=4, tau=30 in both; the peer's attention FCs have no bias (the paper's SE has)"),
    Spec("cond_conv", lambda: vb.create_block("cond_conv", C, C, 3, 1),
         (CV + "CondConv", "CondConv", lambda: dict(in_planes=C, out_planes=C, kernel_size=3, stride=1, padding=1,
                                                    bias=False, K=8)),
         nchw(), "8 experts in both; the peer's routing FC has no bias (the paper's r(x) = sigmoid(GAP(x) R) "
         "has one in the authors' code)"),
    Spec("mixer_block", lambda: vb.create_block("mixer_block", C, H * W),
         (M + "mlp_mixer", "MixerBlock", lambda: dict(tokens_mlp_dim=H * W, channels_mlp_dim=C,
                                                      tokens_hidden_dim=C // 2, channels_hidden_dim=4 * C)),
         nlc(), "the peer shares one LayerNorm between the two sublayers (the paper has two); " + FIXED, sizes=[]),
    Spec("gmlp_block", lambda: vb.create_block("gmlp_block", C, H * W),
         (M + "g_mlp", "gMLP", lambda: dict(num_tokens=1, len_sen=H * W, dim=C, d_ff=3 * C, num_layers=1)),
         nlc(), "the peer's gMLP is a token-id model: its first layer is taken (d_ffn = 6d as in the paper); "
         "same parameters; " + FIXED, peer_post=_first_gmlp_layer, sizes=[]),
    Spec("smlp_block", lambda: vb.create_block("smlp_block", C, (H, W)),
         (M + "sMLP_block", "sMLPBlock", lambda: dict(h=H, w=W, c=C)),
         nchw(), "the peer has no BN+GELU pre-activation (authors' code) and its fuse has a bias; " + FIXED, sizes=[]),
    Spec("repmlp_block", lambda: vb.create_block("repmlp_block", C, (H, W), partition=(7, 7), reparam_conv_k=(1, 3, 5),
                                                 fc1_fc2_reduction=1, fc3_groups=4),
         (M + "repmlp", "RepMLP", lambda: dict(C=C, O=C, H=H, W=W, h=7, w=7, fc1_fc2_reduction=1, fc3_groups=4,
                                               repconv_kernels=(1, 3, 5))),
         nchw(), "the peer's global perceptron hidden layer is C/r = 256 wide; the authors' code (and ours) use "
         "C (H/h) (W/w) / r = 4096: 2 x (4096^2 - 4096 x 256) + (4096 - 256) = 31.5M more; " + FIXED, sizes=[]),
    Spec("repvgg_block", lambda: vb.create_block("repvgg_block", C, C, kernel_size=3, stride=1),
         (R + "repvgg", "RepBlock", lambda: dict(input_channel=C, output_channel=C, kernel_size=3, stride=1)), nchw()),
    Spec("acnet_block", lambda: vb.create_block("acnet_block", C, C, kernel_size=3, stride=1),
         (R + "acnet", "ACNet", lambda: dict(input_channel=C, output_channel=C, kernel_size=3, stride=1)),
         nchw(), "same parameters; the peer adds a ReLU (an ACB replaces a conv-BN, so ours has none)"),
]


def _adapt(adapter, inputs, requires_grad: bool = False):
    """Apply a layout adapter once, outside the timed region (contiguous, like a real caller's tensors); with
    ``requires_grad`` the results are leaves that receive a gradient, like a block's input inside a network."""
    out = tuple(t.contiguous() for t in (adapter(inputs) if adapter else inputs))
    return tuple(t.detach().requires_grad_() for t in out) if requires_grad else out


def _robustness(make, spec: Spec, adapter) -> list[str]:
    """What fails: another input size, backward, batch 1 in eval mode."""
    h0, w0 = spec.hw or (H, W)
    fails = []
    m = make()
    for h, w in spec.sizes:
        try:
            with torch.no_grad():
                m.eval()(*_adapt(adapter, spec.inputs(2, h, w)))
        except Exception as e:
            fails.append(f"{h}x{w}: {type(e).__name__}")
    try:
        measure.TrainStep(m.train(), _adapt(adapter, spec.inputs(2, h0, w0), requires_grad=True))()
    except Exception as e:
        fails.append(f"backward: {type(e).__name__}")
    try:
        with torch.no_grad():
            m.eval()(*_adapt(adapter, spec.inputs(1, h0, w0)))
    except Exception as e:
        fails.append(f"batch 1: {type(e).__name__}")
    return fails


def run(specs: list[Spec], repeats: int, input_grad: bool = True, min_time: float = 0.0) -> list[dict]:
    rows = []
    registered = set(vb.list_blocks())
    for s in specs:
        mod, cls, kw = s.peer
        row = {"name": s.name, "peer": f"{mod.split('.')[-1]}.{cls}", "note": s.note}
        if s.name not in registered:
            row["error"] = "not registered (our block is missing)"
            rows.append(row)
            print(f"{s.name:<28} not registered", file=sys.stderr)
            continue
        try:
            ns = importlib.import_module(mod)
            peer_cls = getattr(ns, cls)
        except Exception as e:
            row["error"] = f"peer import: {type(e).__name__}: {e}"
            rows.append(row)
            continue

        def make_peer(ns=ns, peer_cls=peer_cls, kw=kw, post=s.peer_post):
            m = peer_cls(**kw())
            return post(ns, m) if post else m

        try:
            torch.manual_seed(0)
            ours, peer = s.ours(), make_peer()
        except Exception as e:
            row["error"] = f"construction: {type(e).__name__}: {str(e)[:120]}"
            rows.append(row)
            continue
        row["ours_params"], row["peer_params"] = measure.count_params(ours), measure.count_params(peer)
        row["ours_fails"] = _robustness(s.ours, s, s.ours_in)
        row["peer_fails"] = _robustness(make_peer, s, s.peer_in)
        h, w = s.hw or (H, W)
        row["size"] = f"{h}x{w}"
        inputs = s.inputs(B, h, w)
        try:
            steps = {"ours": measure.TrainStep(ours.train(), _adapt(s.ours_in, inputs, input_grad)),
                     "peer": measure.TrainStep(peer.train(), _adapt(s.peer_in, inputs, input_grad))}
            t = measure.time_callables(steps, rounds=repeats, min_time=min_time,
                                       reset={k: step.reset for k, step in steps.items()})
            row.update(ours_ms=t.median("ours"), peer_ms=t.median("peer"), ratio=t.ratio("peer", "ours"))
        except Exception as e:
            row["error"] = f"timing: {type(e).__name__}: {str(e)[:120]}"
        rows.append(row)
        del ours, peer
        print(f"{s.name:<28} {row.get('ours_ms', float('nan')):9.2f} ms  {row.get('peer_ms', float('nan')):9.2f} ms  "
              f"x{row.get('ratio', float('nan')):.2f}", file=sys.stderr)
    return rows


_HEADER = ["block", "peer class", "size", "params ours", "params peer", "fwd+bwd ms ours", "fwd+bwd ms peer", "ratio",
           "peer fails", "we fail", "notes (why params differ, configuration)"]


def markdown(rows: list[dict], description: str, command: str, input_grad: bool = True) -> str:
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    gm = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")
    out = ["# visionblocks vs fightingcv-attention", "",
           "Generated by `python benchmarks/compare_fightingcv.py`. Forward+backward latency (train mode; backward "
           "with a fixed dense random output gradient), median of alternating runs in one process; ratio = median "
           "over the rounds of peer / ours, the two runs of a round being adjacent in time (> 1: we are faster); at "
           "least `--repeats` rounds and at least `--min-time` seconds of them per block. "
           + ("The inputs require grad, so backward also computes the gradient of the input, as for a block inside "
              "a network." if input_grad else "The inputs require no grad (`--no-input-grad`): backward computes "
              "the parameters' gradients only."), "",
           f"Command: `{command}`", "",
           f"Machine: {description}", "",
           f"Input: batch {B}, {C} channels at {H}x{W} (tokens: {H * W} x {C}) unless the size column says "
           f"otherwise. Geometric mean of the ratios: **x{gm:.2f}** over {len(ratios)} blocks.", ""]
    table = []
    for r in rows:
        f = lambda k, fmt: fmt.format(r[k]) if k in r else "—"  # noqa: E731
        note = r["note"]
        if r.get("error"):
            note = f"**{r['error']}**" + (f"; {note}" if note else "")
        table.append([r["name"], r["peer"], r.get("size", "—"), f("ours_params", "{:,}"), f("peer_params", "{:,}"),
                      f("ours_ms", "{:.2f}"), f("peer_ms", "{:.2f}"), f("ratio", "x{:.2f}"),
                      "; ".join(r.get("peer_fails", [])) or "none", "; ".join(r.get("ours_fails", [])) or "none", note])
    text = "\n".join(out) + "\n" + measure.format_table(table, _HEADER, markdown=True) + "\n"
    if os.path.exists(NOTES):
        with open(NOTES) as fh:
            text += "\n" + fh.read()
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--min-time", type=float, default=3.0,
                    help="seconds of timed rounds per block at least (fast blocks get more than --repeats rounds)")
    ap.add_argument("--names", help="comma-separated subset")
    ap.add_argument("--no-input-grad", action="store_true",
                    help="inputs that need no gradient (default: they do, as a block's input inside a network)")
    ap.add_argument("--out", help="write the Markdown table here (e.g. docs/benchmarks.md)")
    args = ap.parse_args(argv)
    try:
        importlib.import_module("fightingcv_attention")
    except ImportError:
        print("fightingcv-attention is not installed: pip install 'visionblocks[compare]'", file=sys.stderr)
        return 2
    _stub_timm()
    torch.set_num_threads(args.threads)
    specs = [s for s in SPECS if not args.names or s.name in args.names.split(",")]
    rows = run(specs, args.repeats, input_grad=not args.no_input_grad, min_time=args.min_time)
    description = f"{measure.machine_description()}; float32, CPU"
    command = "python benchmarks/compare_fightingcv.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, description, command.strip(), input_grad=not args.no_input_grad)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
