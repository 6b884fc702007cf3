"""Eval latency of a model before and after ``visionblocks.fuse`` (conv-BN folds and re-parameterization; on the
CPU also the convolution weights channels-last), and of timm's same network where timm is installed, side by side
in paired rounds (``visionblocks.measure.time_callables``): medians and the paired ratios.

    .venv-integration/bin/python benchmarks/fuse_latency.py [--models resnet18,resnet50,mobilenetv2,efficientnet_b0]
        [--out docs/benchmarks_timm.md]

Timed per model, alternately: the unfused model; ``fuse(m, channels_last=False)`` (the folds alone, NCHW);
``fuse(m)`` (the default on the CPU: folds and channels-last weights); timm's network as created, and timm's network
after ``.to(memory_format=torch.channels_last)`` (what a timm user can do by hand: the fair peer for the layout
part).  Inputs are NCHW for all.  Every float32 output is held to the unfused network's float64 output: no
further from it than a few times the unfused float32 output is (``check_outputs``); with timm, timm's weights are
loaded into ours first (``visionblocks.weights.load_checkpoint``) so that all compute the same function.  A network
that fails the check gets a row saying so, and is not timed.  ``--models all``: every registered model (those
built for one input size at theirs).  ``--out FILE`` writes the table as the section "Inference form: fuse" of
FILE (replacing that section, keeping the rest).  Like ``compare_timm.py`` it re-executes itself with
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` set unless they are (``--no-malloc-env``).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import visionblocks as vb  # noqa: E402
from visionblocks.measure import machine_description, malloc_settings, time_callables  # noqa: E402

# ours (name, kwargs) -> timm's name: the same networks as in compare_timm.py
TIMM = {"resnet18": ("resnet18", {}), "resnet50": ("resnet50", {"stride_3x3": True}),
        "se_resnet50": ("seresnet50", {"stride_3x3": True}), "resnext50_32x4d": ("resnext50_32x4d", {}),
        "mobilenetv2": ("mobilenetv2_100", {}), "efficientnet_b0": ("efficientnet_b0", {"norm_layer": "batchnorm"}),
        "ghostnet_100": ("ghostnet_100", {}), "repvgg_a0": ("repvgg_a0", {})}
SECTION = "## Inference form: fuse"
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "1000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000"}


def _q(values: list[float]) -> tuple[float, float, float]:
    v = sorted(values)
    if len(v) < 2:
        return v[0], v[0], v[0]
    q = statistics.quantiles(v, n=4)
    return statistics.median(v), q[0], q[2]


def replace_section(text: str, section: str) -> str:
    """``text`` with its "Inference form: fuse" section (up to the next '## ' heading) replaced by ``section``
    (appended when absent)."""
    start = text.find(SECTION)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    end = text.find("\n## ", start + len(SECTION))
    rest = text[end + 1:] if end >= 0 else ""
    return text[:start] + section.rstrip("\n") + "\n" + ("\n" + rest if rest else "")


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet18,resnet50,mobilenetv2,efficientnet_b0",
                   help="comma-separated registry names, or 'all'")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--min-time", type=float, default=3.0)
    p.add_argument("--no-timm", action="store_true", help="do not compare with timm even where it is installed")
    p.add_argument("--no-malloc-env", action="store_true")
    p.add_argument("--out", help="write the table as the 'Inference form: fuse' section of this Markdown file")
    a = p.parse_args(argv)
    if not a.no_malloc_env and not all(k in os.environ for k in MALLOC) and not os.environ.get("VB_FUSE_CHILD"):
        env = {**os.environ, **{k: os.environ.get(k, v) for k, v in MALLOC.items()}, "VB_FUSE_CHILD": "1"}
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *argv], env)
    torch.set_num_threads(a.threads)
    timm = None
    if not a.no_timm:
        try:
            import timm
        except ImportError:
            print("timm is not installed: only fused vs unfused", file=sys.stderr)
    description = machine_description("cpu")
    print(description)
    print("malloc:", malloc_settings())
    head = ("| model | input | unfused ms | fused NCHW ms | fused ms | timm ms | timm CL ms | fused NCHW / unfused | "
            "fused / unfused | fused / timm | fused / timm CL |\n|---|---|---|---|---|---|---|---|---|---|---|")
    print(head, flush=True)
    lines = []
    names = vb.list_models() if a.models == "all" else a.models.split(",")
    for name in names:
        timm_name, kwargs = TIMM.get(name, (None, {}))
        base = vb.create_model(name, **kwargs).eval()
        size = input_size(base, name, a.size)
        x = torch.randn(a.batch, 3, *size)
        peer = peer_cl = None
        if timm is not None and timm_name:
            peer = timm.create_model(timm_name, pretrained=False).eval()
            from visionblocks.weights import load_checkpoint
            load_checkpoint(base, peer.state_dict(), strict=True)
            peer_cl = copy.deepcopy(peer).to(memory_format=torch.channels_last)
        fused_nchw = vb.fuse(copy.deepcopy(base), channels_last=False)
        fused = vb.fuse(copy.deepcopy(base))
        nets = {"unfused": base, "fused NCHW": fused_nchw, "fused": fused, "timm": peer, "timm CL": peer_cl}
        nets = {k: v for k, v in nets.items() if v is not None}
        try:
            check_outputs(nets, x)
        except AssertionError as e:
            lines.append(f"| {name} | {size[0]}x{size[1]} | " + " | ".join(["—"] * 9) + f" | outputs differ: {e} |")
            print(lines[-1], flush=True)
            continue
        with torch.no_grad():
            fns = {k: (lambda net=net: net(x)) for k, net in nets.items()}
            t = time_callables(fns, rounds=a.rounds, min_time=a.min_time)

        def ratio(num: str, den: str) -> str:
            if den not in t.ms:
                return "—"
            r = _q([n / d for n, d in zip(t.ms[num], t.ms[den])])
            return f"{r[0]:.3f} [{r[1]:.2f}, {r[2]:.2f}]"
        cells = [name, f"{size[0]}x{size[1]}"]
        cells += [f"{t.median(k):.1f}" if k in t.ms else "—" for k in ("unfused", "fused NCHW", "fused")]
        cells += [f"{t.median('timm'):.1f} ({timm_name})" if "timm" in t.ms else "—",
                  f"{t.median('timm CL'):.1f}" if "timm CL" in t.ms else "—"]
        cells += [ratio("fused NCHW", "unfused"), ratio("fused", "unfused"), ratio("fused", "timm"),
                  ratio("fused", "timm CL")]
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
        if a.out:  # after every model, so that a stopped run keeps what it measured
            write(a, argv, description, head, lines)


def check_outputs(nets: dict[str, torch.nn.Module], x: torch.Tensor) -> None:
    """Every network's float32 output is as close to the float64 output of ``nets["unfused"]`` as a few times
    the unfused float32 output is (plus 1e-5 of the largest output): the same function up to float32 rounding,
    which some networks amplify at their initialisation (CoTNet's GroupNorms on 4 x 4 maps: 1e-2 relative)."""
    with torch.no_grad():
        ref = copy.deepcopy(nets["unfused"]).double()(x.double())
        scale = float(ref.abs().max())
        errs = {k: float((net(x).double() - ref).abs().max()) for k, net in nets.items()}
        bound = 4 * errs["unfused"] + 1e-5 * scale
        for k, err in errs.items():
            if not err <= bound:
                raise AssertionError(f"{k}: {err / scale:.1e} of the largest output from the float64 reference, "
                                     f"allowed {bound / scale:.1e}")


def input_size(model: torch.nn.Module, name: str, size: int) -> tuple[int, int]:
    """``size`` x ``size`` where the model takes it, else the size it is built for (Mixer, ResMLP, ...)."""
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
        return size, size
    except (ValueError, RuntimeError):
        h, w = vb.model_info(name).pretrained_cfg()["input_size"][-2:]
        return h, w


def write(a, argv, description, head, lines) -> None:
    if a.out:
        command = ("python benchmarks/fuse_latency.py " + " ".join(argv)).strip()
        section = "\n".join([
            SECTION, "",
            "`visionblocks.fuse(model)` folds every conv-BN pair (and re-parameterizable branches) for inference and, "
            "on the CPU, stores the convolution weights channels-last (oneDNN's native layout; `channels_last=False` "
            "keeps NCHW: the **fused NCHW** column). **timm CL** is timm's network after "
            "`.to(memory_format=torch.channels_last)`, what a timm user can do by hand. Eval forward, NCHW input, "
            f"batch {a.batch}, {a.size}x{a.size} (models built for one input size: theirs), float32, all run "
            "alternately in one process; ratios are medians of the per-round ratios (< 1: the first is faster) "
            "with their interquartile range. Every float32 output is "
            "as close to the unfused network's float64 output as a few times the unfused float32 one (float32 "
            "rounding, amplified by some networks at initialisation); timm's network carries the same weights.", "",
            f"Command: `{command}`", "", f"Machine: {description}", "", head, *lines, ""])
        text = open(a.out).read() if os.path.exists(a.out) else "# visionblocks.fuse: the inference form\n"
        with open(a.out, "w") as fh:
            fh.write(replace_section(text, section))


if __name__ == "__main__":
    main()
