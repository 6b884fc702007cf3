"""ultralytics (YOLO) integration: every ``nchw`` block usable by name in a YOLO model YAML.

Importing this module (or calling :func:`register`) makes each registered ``nchw`` block that works at any input
size known to ultralytics' model parser under its registry name (and former names), e.g. a CBAM after a C2f::

    backbone:
      - [-1, 1, Conv, [64, 3, 2]]
      ...
      - [-1, 3, C2f, [128, True]]
      - [-1, 1, cbam, []]            # or [-1, 1, cbam, [8]], [-1, 1, cbam, [{reduction: 8}]]

The YAML's arguments are the block's constructor arguments after the channel count (a trailing mapping is passed
as keywords); the channel count is never written: the block is a :class:`~visionblocks.surgery.LazyBlock`, built
from the channels of the layer before it when the model first runs (ultralytics runs the model once while building
it), so the same YAML works at every width scale (n/s/m/l/x).  A line whose arguments the block does not take fails
while the model is parsed, naming the block and its constructor.  Tested with ultralytics 8.4.190.

The names are added to the globals of ``ultralytics.nn.tasks`` (where its parser looks layer names up); names the
parser already knows are never replaced.  ``import visionblocks`` registers them itself when ultralytics is already
imported, as it is when ultralytics loads a checkpoint holding our blocks (a fresh process that resumes or
fine-tunes such a checkpoint rebuilds the model from its YAML).

ultralytics folds every ``Conv``'s BatchNorm into its convolution before it predicts, validates or exports
(``BaseModel.fuse``); registered, that first folds visionblocks' re-parameterizable blocks
(:func:`visionblocks.reparameterize`, with the running statistics ultralytics' own fold uses), so a YOLO whose
convolutions ``visionblocks.replace`` swapped for ACNet/RepVGG/DBB blocks deploys as the original architecture.

A layer name that neither ultralytics nor visionblocks knows (a typo in
the YAML) is a :class:`~visionblocks.surgery.SurgeryError` naming it and the closest names of both, where the
parser alone gives a bare ``KeyError``.
"""
from __future__ import annotations

import difflib
import functools
import warnings
from typing import Any

from visionblocks.registry import block_info, list_blocks
from visionblocks.surgery._core import SurgeryError
from visionblocks.surgery.lazy import LazyBlock

__all__ = ["YOLO_BLOCKS", "YoloBlock", "register"]

#: YAML name -> the class ultralytics' parser builds for it.
YOLO_BLOCKS: dict[str, type] = {}


class YoloBlock(LazyBlock):
    """A lazy block built from a YOLO YAML line: ``[from, n, <name>, [*args, {**kwargs}]]``."""

    block_name: str = ""

    def __init__(self, *args: Any):
        kwargs: dict[str, Any] = {}
        if args and isinstance(args[-1], dict):
            args, kwargs = args[:-1], dict(args[-1])
        try:
            super().__init__(self.block_name, *args, **kwargs)
        except SurgeryError as e:
            raise SurgeryError(f"YOLO YAML layer {self.block_name!r} with arguments {list(args) + ([kwargs] if kwargs else [])}: "
                               f"{e}") from e

    def initialize_parameters(self, *args: Any, **kwargs: Any) -> None:
        # a refusal that depends on the channel count comes at the first forward: name the YAML line (ultralytics
        # sets the layer's index i on the module)
        try:
            super().initialize_parameters(*args, **kwargs)
        except SurgeryError as e:
            i = self.__dict__.get("i")
            where = f"YOLO YAML layer {i} " if isinstance(i, int) else "YOLO YAML layer "
            raise SurgeryError(f"{where}{self.block_name!r}: {e}") from e


def _yolo_class(name: str) -> type:
    cls = type(name, (YoloBlock,), {"block_name": name, "__module__": __name__,
                                   "__doc__": f"The visionblocks block {name!r} in a YOLO YAML (see {__name__})."})
    # a module attribute (its qualified name), so that pickle finds the class of a block not built yet
    cls.__qualname__ = f"yolo_{name}"
    globals()[cls.__qualname__] = cls
    return cls


def yolo_block_names() -> list[str]:
    """The registry names of the blocks a YOLO YAML can use: ``nchw`` blocks that work at any input size."""
    return [n for n in list_blocks() if block_info(n).layout == "nchw" and not block_info(n).fixed_size]


def _layer_names(d: Any) -> list[str]:
    """The layer names of a parsed YOLO YAML dict (``[from, n, name, args]`` lines), where it has that shape."""
    lines = [*(d.get("backbone") or []), *(d.get("head") or [])] if isinstance(d, dict) else []
    return [ln[2] for ln in lines if isinstance(ln, (list, tuple)) and len(ln) > 2 and isinstance(ln[2], str)]


def _named_parse_model(parse_model):
    """ultralytics' ``parse_model`` whose bare ``KeyError`` for an unknown layer name becomes a SurgeryError naming
    the layer and the closest names ultralytics and visionblocks know."""
    @functools.wraps(parse_model)
    def parse(d, *args, **kwargs):
        names = _layer_names(d)  # before the call: the parser may edit its dict
        try:
            return parse_model(d, *args, **kwargs)
        except KeyError as e:
            import torch.nn as nn
            from ultralytics.nn import tasks
            key = e.args[0] if len(e.args) == 1 else None
            if not isinstance(key, str) or key not in names or key in vars(tasks):
                raise
            known = [n for n, v in vars(tasks).items() if isinstance(v, type) and issubclass(v, nn.Module)]
            close = difflib.get_close_matches(key, known, n=5, cutoff=0.6)
            hint = f"; did you mean: {', '.join(close)}?" if close else ""
            raise SurgeryError(f"YOLO YAML layer {key!r} is neither an ultralytics layer nor a visionblocks block"
                               f"{hint} (visionblocks' YAML names: visionblocks.integrations.ultralytics."
                               "yolo_block_names())") from e
    parse._visionblocks_named = True
    return parse


def _fold_ours(model) -> None:
    """Fold the re-parameterizable modules of ``model`` as in eval mode (the running statistics ultralytics' fuse
    folds with too), leaving every module's training flag as it was."""
    from visionblocks.reparam import is_reparameterizable, reparameterize
    if not any(is_reparameterizable(m) and not getattr(m, "is_reparameterized", False) for m in model.modules()):
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        reparameterize(model)
    finally:
        for m, training in modes:
            m.training = training


def _folding_fuse(fuse):
    """ultralytics' ``BaseModel.fuse``, which first folds visionblocks' re-parameterizable blocks: its own fold reads
    ``m.conv.weight`` of every ``Conv``, which a block that ``visionblocks.replace`` put there has not."""
    @functools.wraps(fuse)
    def folding_fuse(self, *args, **kwargs):
        _fold_ours(self)
        return fuse(self, *args, **kwargs)
    folding_fuse._visionblocks_folds = True
    return folding_fuse


def register() -> list[str]:
    """Make every usable block known to ultralytics' YAML parser, and ultralytics' fuse fold visionblocks'
    re-parameterizable blocks first (idempotent; call it again after registering blocks of your own).  Returns the
    YAML names added."""
    try:
        from ultralytics.nn import tasks
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != "ultralytics":
            raise  # one of ultralytics' own dependencies: its message says which
        raise ModuleNotFoundError(f"{__name__} needs ultralytics: pip install 'visionblocks[ultralytics]'",
                                  name="ultralytics") from None

    added = []
    for name in yolo_block_names():
        for yaml_name in (name, *block_info(name).aliases):
            cls = YOLO_BLOCKS.get(yaml_name) or _yolo_class(name)
            existing = vars(tasks).get(yaml_name)
            if existing is not None and existing is not cls:
                warnings.warn(f"ultralytics already knows a layer named {yaml_name!r}; the visionblocks block keeps "
                              "its place only under its other names", stacklevel=2)
                continue
            YOLO_BLOCKS[yaml_name] = cls
            if existing is None:
                setattr(tasks, yaml_name, cls)
                added.append(yaml_name)
    if not getattr(tasks.parse_model, "_visionblocks_named", False):
        tasks.parse_model = _named_parse_model(tasks.parse_model)
    if not getattr(tasks.BaseModel.fuse, "_visionblocks_folds", False):
        tasks.BaseModel.fuse = _folding_fuse(tasks.BaseModel.fuse)
    return added


register()
