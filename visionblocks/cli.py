"""The ``visionblocks`` command line: ``list``, ``info`` (and ``bench``).

``visionblocks info MODEL`` prints the paper, parameters and MACs, the data configuration (what
``resolve_data_config`` gives) and the feature table (index, module, channels, reduction) of the backbone.

Unknown names and bad options exit with status 2 and a one-line message.
"""
from __future__ import annotations

import argparse
import fnmatch
import sys
from typing import Sequence

from . import registry
from .measure import format_table
from .registry import FAMILIES
from .train.cli import OneLineParser, run_command

__all__ = ["build_parser", "main", "cmd_list", "cmd_info", "feature_rows"]


def cmd_list(args: argparse.Namespace) -> int:
    if args.models:
        if args.family:
            raise ValueError("--family selects blocks; models have none (use --pattern)")
        names = registry.list_models(args.pattern)
        if not names:
            raise ValueError(f"no model matches --pattern {args.pattern!r} (visionblocks list --models)")
        rows = [[n, registry.model_info(n).paper] for n in names]
        print(format_table(rows, ["model", "paper"]))
        return 0
    names = [n for n in registry.list_blocks(args.family) if args.pattern is None or fnmatch.fnmatch(n, args.pattern)]
    if not names:
        raise ValueError(f"no block matches --pattern {args.pattern!r}" + (f" in family {args.family}" if args.family
                                                                            else "") + " (visionblocks list)")
    rows = []
    for n in names:
        i = registry.block_info(n)
        rows.append([n, i.family, i.layout + (" (fixed size)" if i.fixed_size else ""), i.paper])
    print(format_table(rows, ["name", "family", "layout", "paper"]))
    print(f"\n{len(rows)} blocks, {len(registry.list_models())} models (visionblocks list --models)")
    return 0


def _fmt_shape(shape) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(str(tuple(s)) for s in shape)
    return str(tuple(shape))


def feature_rows(name: str) -> list[list]:
    """``[index, module, channels, reduction]`` (as text) for each feature of model ``name`` (built on the meta device:
    nothing is allocated); ``[]`` for a model without ``feature_info``."""
    import torch

    with torch.device("meta"):
        model = registry.create_model(name)
    info = getattr(model, "feature_info", None)
    if info is None:
        return []
    return [[str(e["index"]), e["module"], str(e["num_chs"]), str(e["reduction"])] for e in info]


def _fmt_floats(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _print_model_backbone(name: str) -> None:
    """The data configuration, the output strides and the feature table of model ``name``."""
    mi = registry.model_info(name)
    cfg = mi.pretrained_cfg()
    print(f"  data:   input {tuple(cfg['input_size'])}, {cfg['interpolation']}, crop_pct {cfg['crop_pct']:g} "
          f"({cfg.get('crop_mode', 'center')}), mean {_fmt_floats(cfg['mean'])}, std {_fmt_floats(cfg['std'])}")
    if mi.output_strides:
        print(f"  output_stride: {', '.join(map(str, mi.output_strides))} (create_model({name!r}, output_stride=...))")
    rows = feature_rows(name)
    if not rows:
        print("  features: none declared (no feature_info)")
        return
    print(f"  features: create_model({name!r}, features_only=True, out_indices=...)")
    table = format_table(rows, ["index", "module", "channels", "reduction"])
    print("\n".join("    " + line for line in table.splitlines()))


def _resolve(name: str) -> str:
    """The registry name of model or block ``name`` as the library resolves it (any case; a renamed block's former
    name), or ValueError naming the closest."""
    for lookup in (registry.model_info, registry.block_info):
        try:
            return lookup(name).name
        except ValueError:
            pass
    import difflib
    close = difflib.get_close_matches(name.lower(), registry.list_blocks() + registry.list_models(), n=5, cutoff=0.5)
    raise ValueError(f"unknown block or model {name!r}" + (f"; did you mean: {', '.join(close)}?" if close else ""))


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from . import measure, testing
    from .reparam import is_reparameterizable

    name = _resolve(args.name)
    if name in registry.list_models():
        mi = registry.model_info(name)
        params, macs = measure.count_macs(name)
        print(f"{name}  (model)\n  paper: {mi.paper}\n  link:  {mi.url}\n  input: {mi.input_size}\n"
              f"  params: {params / 1e6:.3f} M (paper: {mi.paper_params} M)\n"
              f"  MACs:   {macs / 1e9:.3f} G (paper: {mi.paper_macs} G)")
        if mi.paper_note:
            print(f"  note:  {mi.paper_note}")
        if mi.dynamic_export_unsupported:
            print(f"  torch.export: no dynamic batch/size: {mi.dynamic_export_unsupported}")
        _print_model_backbone(name)
        return 0
    info = registry.block_info(name)
    m = testing.build(info).eval()
    inputs = testing.make_inputs(info)
    with torch.no_grad():
        out = m(*inputs)
    ex = info.example
    print(f"{name}  ({info.family} block, layout {info.layout}{', fixed size' if info.fixed_size else ''})")
    print(f"  class:  {info.cls.__module__}.{info.cls.__qualname__}")
    print(f"  paper:  {info.paper}\n  link:   {info.url}")
    defaults = registry.constructor_defaults(info.cls)
    print("  constructor: " + ", ".join(f"{k}={v!r}" for k, v in defaults.items()))
    call = ", ".join([repr(a) for a in ex.args] + [f"{k}={v!r}" for k, v in ex.kwargs.items()])
    print(f"  example: {info.cls.__name__}({call})")
    print(f"  input:  {_fmt_shape([tuple(t.shape) for t in inputs]) if len(inputs) > 1 else tuple(inputs[0].shape)}")
    print(f"  output: {testing.shapes_of(out)}")
    print(f"  params: {measure.count_params(m):,}")
    if is_reparameterizable(info.cls):
        print("  re-parameterizable: yes (visionblocks.reparameterize)")
    if info.onnx_unsupported:
        print(f"  ONNX: not exportable: {info.onnx_unsupported}")
    if info.dynamic_export_unsupported:
        print(f"  torch.export: no dynamic batch/size: {info.dynamic_export_unsupported}")
    if info.notes:
        print(f"  notes: {info.notes}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="visionblocks", description="Plug-and-play vision building blocks for PyTorch.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    pl = sub.add_parser("list", help="list the registered blocks (or models)")
    pl.add_argument("--family", choices=FAMILIES, help="only this family")
    pl.add_argument("--models", action="store_true", help="list the models instead")
    pl.add_argument("--pattern", help="shell-style filter of the names, e.g. 'resnet*' (with --models) or '*conv*'")
    pl.set_defaults(fn=cmd_list)
    pi = sub.add_parser("info", help="paper, layout, defaults, example shapes and parameters of one entry "
                                     "(for a model: its data configuration and feature table)")
    pi.add_argument("name")
    pi.set_defaults(fn=cmd_info)
    try:
        from .bench import add_bench_parser
    except ImportError:
        pass
    else:
        add_bench_parser(sub)
    from .train.cli import add_subcommands as add_train_subcommands
    add_train_subcommands(sub)  # train, compare
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
