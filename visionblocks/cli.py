"""The ``visionblocks`` command line: ``list``, ``info`` (and ``bench``).

Unknown names and bad options exit with status 2 and a one-line message.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import registry
from .measure import format_table
from .registry import FAMILIES

__all__ = ["build_parser", "main", "cmd_list", "cmd_info"]


class _Parser(argparse.ArgumentParser):
    """argparse that prints a one-line message (not the whole usage) and exits 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def cmd_list(args: argparse.Namespace) -> int:
    if args.models:
        rows = [[n, registry.model_info(n).paper] for n in registry.list_models(args.pattern)]
        print(format_table(rows, ["model", "paper"]))
        return 0
    rows = []
    for n in registry.list_blocks(args.family):
        i = registry.block_info(n)
        rows.append([n, i.family, i.layout + (" (fixed size)" if i.fixed_size else ""), i.paper])
    print(format_table(rows, ["name", "family", "layout", "paper"]))
    print(f"\n{len(rows)} blocks, {len(registry.list_models())} models (visionblocks list --models)")
    return 0


def _fmt_shape(shape) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(str(tuple(s)) for s in shape)
    return str(tuple(shape))


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from . import measure, testing
    from .reparam import is_reparameterizable

    name = args.name
    if name in registry.list_models():
        mi = registry.model_info(name)
        params, macs = measure.count_macs(name)
        print(f"{name}  (model)\n  paper: {mi.paper}\n  link:  {mi.url}\n  input: {mi.input_size}\n"
              f"  params: {params / 1e6:.3f} M (paper: {mi.paper_params} M)\n"
              f"  MACs:   {macs / 1e9:.3f} G (paper: {mi.paper_macs} G)")
        if mi.paper_note:
            print(f"  note:  {mi.paper_note}")
        return 0
    if name not in registry.list_blocks():
        import difflib
        close = difflib.get_close_matches(name, registry.list_blocks() + registry.list_models(), n=5, cutoff=0.5)
        raise ValueError(f"unknown block or model {name!r}" + (f"; did you mean: {', '.join(close)}?" if close else ""))
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
    if info.notes:
        print(f"  notes: {info.notes}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="visionblocks", description="Plug-and-play vision building blocks for PyTorch.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    pl = sub.add_parser("list", help="list the registered blocks (or models)")
    pl.add_argument("--family", choices=FAMILIES, help="only this family")
    pl.add_argument("--models", action="store_true", help="list the models instead")
    pl.add_argument("--pattern", help="shell-style filter for --models, e.g. 'resnet*'")
    pl.set_defaults(fn=cmd_list)
    pi = sub.add_parser("info", help="paper, layout, defaults, example shapes and parameters of one entry")
    pi.add_argument("name")
    pi.set_defaults(fn=cmd_info)
    try:
        from .bench import add_bench_parser
    except ImportError:
        pass
    else:
        add_bench_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ValueError as e:  # unknown names, bad option values
        print(f"visionblocks {args.command}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
