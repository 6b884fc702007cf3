"""The open registries of blocks and models.

Blocks and models register themselves with a class (or function) decorator; nothing here is an
if/elif factory, so users register their own entries exactly as the library does::

    @visionblocks.register_block("my_gate", family="attention", layout="nchw",
                                 paper="Me et al. 2026", url="https://example.org",
                                 example=visionblocks.Example(args=(64,), input_shape=(2, 64, 14, 14)))
    class MyGate(nn.Module): ...

Each block entry carries an :class:`Example`: the paper's default configuration at a small input, used by
the contract test-suite, the benchmark and ``visionblocks info``.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn

__all__ = [
    "FAMILIES", "LAYOUTS", "IMAGENET_MEAN", "IMAGENET_STD", "Example", "BlockInfo", "ModelInfo",
    "register_block", "list_blocks", "block_info", "create_block",
    "register_model", "list_models", "model_info", "create_model",
]

FAMILIES = ("attention", "conv", "reparam", "mlp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DATA_KEYS = ("crop_pct", "crop_mode", "interpolation", "mean", "std")
LAYOUTS = ("nchw", "nlc", "conv", "head", "special")


@dataclass(frozen=True)
class Example:
    """A small, runnable configuration of a block: ``cls(*args, **kwargs)`` applied to ``input_shape``.

    ``args``/``kwargs`` hold the paper's default configuration (the example *is* the block users get), at a
    channel count small enough for tests.  For ``special`` layouts,
    ``make_inputs(batch=None, size=None, bad=None, generator=None)`` returns the tuple of input tensors
    (``batch``/``size`` are ``None`` for the example's own, ``size`` is otherwise an (H, W) pair that the
    block interprets, e.g. as a node count; ``bad`` is ``None``, ``"channels"`` or ``"rank"`` for a
    deliberately wrong input), and ``output_shapes(inputs)`` gives the expected output shape, or tuple
    of shapes.  ``output_shapes`` may also override the layout's rule for other layouts (e.g. a
    transposed convolution's upsampling).
    """

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    make_inputs: Callable[..., tuple] | None = None
    output_shapes: Callable[..., Any] | None = None


@dataclass(frozen=True)
class BlockInfo:
    """What the registry knows of one block."""

    name: str
    cls: type
    family: str
    layout: str
    paper: str
    url: str
    fixed_size: bool
    example: Example
    onnx_unsupported: str | None = None
    notes: str = ""
    aliases: tuple[str, ...] = ()
    dynamic_export_unsupported: str | None = None

    def build_example(self) -> nn.Module:
        """The block at its example configuration."""
        return self.cls(*self.example.args, **self.example.kwargs)


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of one model.

    ``paper_params`` is in millions and ``paper_macs`` in G multiply-accumulates (what most vision papers
    call "FLOPs"), both at ``input_size``; ``paper_note`` explains any known disagreement with the paper (the table
    ``visionblocks/models/paper_notes.py`` holds the notes; a ``paper_note=`` argument overrides it).
    """

    name: str
    fn: Callable[..., nn.Module]
    paper: str
    url: str
    input_size: tuple[int, int, int] = (3, 224, 224)
    paper_params: float | None = None
    paper_macs: float | None = None
    paper_note: str = ""
    test_input_size: tuple[int, int] | None = None
    macs_rel_tol: float = 0.01
    count_kwargs: dict = field(default_factory=dict)
    data_cfg: dict = field(default_factory=dict)
    output_strides: tuple[int, ...] = ()
    license: str = ""
    dynamic_export_unsupported: str | None = None

    def native_output_stride(self) -> int:
        """The reduction of the model's last feature as built (counted once, on the meta device): the
        ``output_stride`` that asks for nothing (timm pipelines pass ``output_stride=32`` to every model)."""
        if self.name not in _NATIVE_STRIDES:
            with torch.device("meta"):
                _NATIVE_STRIDES[self.name] = int(self.fn(num_classes=0, in_chans=3).feature_info.reduction()[-1])
        return _NATIVE_STRIDES[self.name]

    def pretrained_cfg(self) -> dict[str, Any]:
        """The model's data configuration and provenance, as timm's ``pretrained_cfg`` (without weights): the
        paper's evaluation ``input_size``, ``crop_pct``, ``interpolation``, ``mean``, ``std``, and ``paper``,
        ``url``, ``license``.  The model adds ``first_conv``/``classifier``/``num_classes``."""
        cfg = {"input_size": self.input_size, "crop_pct": 0.875, "crop_mode": "center",
               "interpolation": "bilinear", "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        cfg.update(self.data_cfg)
        cfg.update(paper=self.paper, url=self.url, license=self.license or "MIT (architecture code)",
                   architecture=self.name)
        return cfg


_BLOCKS: dict[str, BlockInfo] = {}
_NATIVE_STRIDES: dict[str, int] = {}  # model name -> ModelInfo.native_output_stride()
_MODELS: dict[str, ModelInfo] = {}
_BLOCK_ALIASES: dict[str, str] = {}  # old (renamed) name -> canonical name


def _unknown(kind: str, name: str, known: dict) -> ValueError:
    close = difflib.get_close_matches(str(name).lower(), list(known), n=5, cutoff=0.5)
    if not close:  # fall back to names sharing a prefix or substring
        close = [k for k in sorted(known) if str(name).lower() in k or k.startswith(str(name)[:3].lower())][:5]
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}{hint} (see visionblocks.list_{kind}s())")


def _check_new_name(kind: str, name: Any, known: dict, aliases: dict, owner: Any, owner_of: Callable) -> None:
    """A name to register: a non-empty str without spaces (and without a dot for a model: ``"name.weights"`` selects
    published weights), not taken by another entry or by an alias, in any case (lookups ignore case)."""
    if not isinstance(name, str):
        raise TypeError(f"a {kind} name must be a str, got {type(name).__name__} ({name!r})")
    if not name or any(c.isspace() for c in name) or (kind == "model" and "." in name):
        rule = "without spaces or dots" if kind == "model" else "without spaces"
        raise ValueError(f"a {kind} name must be a non-empty str {rule}, got {name!r}")
    lower = name.lower()
    for key, info in known.items():
        if key.lower() == lower and (key != name or owner_of(info) is not owner):
            raise ValueError(f"{kind} {name!r} is already registered" + (f" (as {key!r})" if key != name else "")
                             + f" to {getattr(owner_of(info), '__qualname__', owner_of(info))}")
    for alias, target in aliases.items():
        if alias.lower() == lower and target != name:
            raise ValueError(f"{kind} name {name!r} is taken: it is a former name of {target!r}, which it resolves to")


def register_block(name: str, *, family: str, layout: str, paper: str, url: str, fixed_size: bool = False,
                   example: Example, onnx_unsupported: str | None = None, notes: str = "",
                   aliases: tuple[str, ...] = (),
                   dynamic_export_unsupported: str | None = None) -> Callable[[type], type]:
    """Class decorator registering an ``nn.Module`` subclass as block ``name``.

    ``family`` is one of :data:`FAMILIES`, ``layout`` one of :data:`LAYOUTS`.  ``fixed_size=True`` marks
    blocks whose weights are tied to a spatial size / token count by design (they must reject other sizes
    with a ``ValueError``).  ``onnx_unsupported`` is the reason a block cannot be exported to ONNX, when it
    truly cannot; ``dynamic_export_unsupported`` the reason ``torch.export`` cannot keep its batch and spatial
    sizes dynamic (the export fails or specialises to the example's size), when its math does not allow it.
    Both reasons are sentences (20 characters or more).  ``aliases`` are former names of a renamed block: ``create_block``/``block_info`` still
    resolve them, ``list_blocks`` shows only the canonical name.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not isinstance(example, Example):
        raise TypeError(f"example must be a visionblocks.Example, got {type(example).__name__}")
    if layout != "special" and example.input_shape is None:
        raise ValueError(f"block {name!r}: example.input_shape is required for layout {layout!r}")
    if layout == "special" and example.make_inputs is None:
        raise ValueError(f"block {name!r}: a 'special' block needs example.make_inputs")
    for key, reason in (("onnx_unsupported", onnx_unsupported),
                        ("dynamic_export_unsupported", dynamic_export_unsupported)):
        if reason is not None and (not isinstance(reason, str) or len(reason.strip()) < 20):
            raise ValueError(f"block {name!r}: {key} must be the reason, as a sentence; got {reason!r}")

    def decorator(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register_block expects an nn.Module subclass, got {cls!r}")
        _check_new_name("block", name, _BLOCKS, _BLOCK_ALIASES, cls, lambda info: info.cls)
        for alias in aliases:
            if not isinstance(alias, str) or alias.lower() in {k.lower() for k in _BLOCKS} or \
                    _BLOCK_ALIASES.get(alias, name) != name:
                raise ValueError(f"alias {alias!r} of block {name!r} is already taken")
        _BLOCKS[name] = BlockInfo(name, cls, family, layout, paper, url, fixed_size, example,
                                  onnx_unsupported, notes, tuple(aliases), dynamic_export_unsupported)
        _BLOCK_ALIASES.update({alias: name for alias in aliases})
        return cls

    return decorator


def unregister_block(name: str) -> None:
    """Remove a block (used by tests that register throw-away blocks)."""
    info = _BLOCKS.pop(name, None)
    for alias in info.aliases if info else ():
        _BLOCK_ALIASES.pop(alias, None)


def list_blocks(family: str | None = None) -> list[str]:
    """Sorted names of the registered blocks, optionally of one family."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return sorted(n for n, i in _BLOCKS.items() if family is None or i.family == family)


def _lookup(name: str, known: dict, aliases: dict, kind: str):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a str, got {type(name).__name__} ({name!r})")
    for key in (name, name.lower()):
        key = aliases.get(key, key)
        if key in known:
            return known[key]
    raise _unknown(kind, name, known)


def block_info(name: str) -> BlockInfo:
    """The registry entry of block ``name`` (case-insensitive; former names of renamed blocks resolve too)."""
    return _lookup(name, _BLOCKS, _BLOCK_ALIASES, "block")


def create_block(name: str, *args: Any, **kwargs: Any) -> nn.Module:
    """Build block ``name`` with the given constructor arguments (its class defaults otherwise)."""
    return block_info(name).cls(*args, **kwargs)


def register_model(name: str | None = None, *, paper: str, url: str, input_size: tuple[int, int, int] = (3, 224, 224),
                   paper_params: float | None = None, paper_macs: float | None = None, paper_note: str = "",
                   test_input_size: tuple[int, int] | None = None, macs_rel_tol: float = 0.01,
                   count_kwargs: dict | None = None, data_cfg: dict | None = None,
                   output_strides: tuple[int, ...] = (), license: str = "",
                   dynamic_export_unsupported: str | None = None) -> Callable:
    """Function decorator registering a model constructor ``fn(num_classes=1000, in_chans=3, **kwargs)``.

    ``test_input_size`` is a small (H, W) the test-suite may use instead of ``input_size`` to keep CPU
    tests fast; leave it ``None`` when the model only works at its default size.  ``macs_rel_tol`` widens the
    1% MACs tolerance only where ``paper_note`` shows the paper's figure is rounded or wrong.
    ``count_kwargs`` builds the form the paper counts (e.g. ``{"deploy": True}`` for re-parameterized
    networks whose papers count the folded network) when comparing with ``paper_params``/``paper_macs``;
    ``create_model`` itself always builds the trainable form.  ``data_cfg`` overrides the evaluation
    pre-processing of :meth:`ModelInfo.pretrained_cfg` (``crop_pct``, ``interpolation``, ``mean``, ``std``, as the
    paper evaluates).  ``output_strides`` lists the strides other than the native one that the model can run
    at with dilated convolutions (``create_model(name, output_stride=16)``, DeepLab-style).
    ``dynamic_export_unsupported`` says why ``torch.export`` with a dynamic batch and size cannot give one
    program right at every size the model accepts (its contract check then requires the export to fail, fix a
    size, or refuse some size; an ONNX translation drops the program's guards, so such a model must be exported
    at the size it will run at).
    """
    unknown = set(data_cfg or {}) - set(_DATA_KEYS)
    if unknown:
        raise ValueError(f"data_cfg keys must be among {_DATA_KEYS}, got {sorted(unknown)}")

    def decorator(fn: Callable) -> Callable:
        key = name or fn.__name__
        _check_new_name("model", key, _MODELS, {}, fn, lambda info: info.fn)
        from visionblocks.models.paper_notes import NOTES  # noqa: PLC0415 (a data table, imported on use)
        note = paper_note or NOTES.get(key, "")
        _MODELS[key] = ModelInfo(key, fn, paper, url, tuple(input_size), paper_params, paper_macs, note,
                                 test_input_size, macs_rel_tol, dict(count_kwargs or {}), dict(data_cfg or {}),
                                 tuple(output_strides), license, dynamic_export_unsupported)
        return fn

    return decorator


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by a shell-style ``pattern``."""
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError(f"list_models: pattern must be a str (shell-style, e.g. 'resnet*') or None, got "
                        f"{type(pattern).__name__} ({pattern!r})")
    names = sorted(_MODELS)
    return names if pattern is None else [n for n in names if fnmatch.fnmatch(n, pattern)]


def model_info(name: str) -> ModelInfo:
    """The registry entry of model ``name`` (case-insensitive)."""
    return _lookup(name, _MODELS, {}, "model")


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _check_rate(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def create_model(name: str, num_classes: int = 1000, in_chans: int = 3, *, features_only: bool = False,
                 out_indices=None, output_stride: int | None = None, pretrained=None, **kwargs: Any) -> nn.Module:
    """Build model ``name`` (names as in timm; every model has the backbone API of
    :class:`visionblocks.models.ModelBase`).

    Args:
        num_classes: classifier size (0: no classifier, ``forward`` returns pooled features).
        in_chans: input channels.
        features_only: return a :class:`~visionblocks.features.FeatureListNet` whose forward gives the list of
            feature maps at ``out_indices`` (default: every feature in ``model.feature_info``).
        out_indices: the features to return (ints; negative ones count from the end).  With ``features_only``,
            ``output_fmt="NHWC"`` returns channels-last-ordered (B, H, W, C) maps (timm's ``output_fmt``).
        output_stride: run at a smaller stride with dilated convolutions, where the model offers it
            (``model_info(name).output_strides``).
        pretrained: ``True`` (the model's default published weights), a weights tag, or a checkpoint path/URL
            (see :func:`visionblocks.weights.create_pretrained`); ``"resnet50.tv_in1k"`` names the weights too.
        **kwargs: the model's own options (``drop_path_rate``, ``drop_rate``, ``attn`` ...), and timm's
            ``global_pool`` (``"avg"``, ``"max"``, ``""``: none, with ``num_classes=0``) for every model.
    """
    from visionblocks.layers.validate import check_arg  # noqa: PLC0415 (layers import this module)
    check_arg("features_only", features_only, "bool")
    feature_kwargs = {k: kwargs.pop(k) for k in ("output_fmt",) if k in kwargs}  # the feature extractor's options
    if feature_kwargs and not features_only:
        raise ValueError(f"{', '.join(feature_kwargs)} is only meaningful with features_only=True")
    if not features_only and out_indices is not None:
        raise ValueError("out_indices is only meaningful with features_only=True")
    if pretrained is not None or (isinstance(name, str) and "." in name):  # weights: built as the checkpoint's net
        from visionblocks.weights import create_pretrained  # noqa: PLC0415 (optional machinery, imported on use)
        return create_pretrained(name, True if pretrained is None else pretrained, num_classes=num_classes,
                                 in_chans=in_chans, output_stride=output_stride, **kwargs,
                                 features=dict(out_indices=out_indices, **feature_kwargs) if features_only else None)
    info = model_info(name)
    _check_int("num_classes", num_classes, 0)
    _check_int("in_chans", in_chans, 1)
    for rate in ("drop_rate", "drop_path_rate"):
        if rate in kwargs:
            _check_rate(rate, kwargs[rate])
    global_pool = kwargs.pop("global_pool", None)
    if output_stride is not None:
        native = max(info.output_strides, default=None)
        if output_stride not in info.output_strides and output_stride != info.native_output_stride():
            offers = (f"output_stride in {info.output_strides}" if info.output_strides
                      else f"only its native output stride, {info.native_output_stride()}")
            raise ValueError(f"model {info.name!r} offers {offers}; got output_stride={output_stride!r}")
        if output_stride != native and output_stride in info.output_strides:
            kwargs["output_stride"] = output_stride
    model = info.fn(num_classes=num_classes, in_chans=in_chans, **kwargs)
    if global_pool is not None:  # timm's create_model option, for every model (the head's pooling; fc untouched)
        model.set_global_pool(global_pool)
    if hasattr(model, "pretrained_cfg"):
        model.pretrained_cfg = dict(info.pretrained_cfg(), **model.pretrained_cfg)
    if features_only:
        from visionblocks.features import FeatureListNet  # noqa: PLC0415
        model = FeatureListNet(model, out_indices, **feature_kwargs)
    return model


def constructor_defaults(cls: type) -> dict[str, Any]:
    """The keyword defaults of ``cls.__init__`` (for ``visionblocks info``)."""
    sig = inspect.signature(cls.__init__)
    return {k: (p.default if p.default is not inspect.Parameter.empty else "<required>")
            for k, p in sig.parameters.items() if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
