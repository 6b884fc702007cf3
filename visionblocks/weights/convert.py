"""The converter registry: how a checkpoint in another codebase's layout becomes one of our state dicts.

A :class:`Converter` is keyed by its ``name`` (``"<layout>.<family>"``, e.g. ``"torchvision.resnet"``), applies
to models of given classes, and recognises its layout from the checkpoint's keys (``detect``).  ``convert``
maps the source state dict to our key names, permuting, reshaping or splitting tensors where the source orders
things differently; ``check`` refuses a model whose configuration differs from the source network's (raising
:class:`~visionblocks.weights.errors.ArchitectureMismatchError` naming the option to set).

Converters are written against the model they load into (``model`` is passed to ``convert``), never against
a frozen list of our key names, so a refactor that renames our modules breaks them loudly (a strict load names
every key) rather than silently.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .errors import LayoutError

__all__ = [
    "Converter", "register_converter", "list_converters", "get_converter", "find_converter", "rename_keys",
    "OURS",
]

OURS = "visionblocks"

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Converter:
    """One source layout -> our layout.

    Args:
        name: unique ``"<layout>.<family>"`` id (``layout=`` of :func:`load_checkpoint` accepts it).
        source: where the layout comes from, as users know it ("torchvision", "timm", "authors: <repo>").
        model_types: our model classes it loads into.
        models: our registry names it serves and the source's name for each (``{ours: source_name}``), for
            the weights table and the harness.
        detect: ``keys -> bool``, true when the checkpoint's keys are in this layout.
        convert: ``(state_dict, model) -> state_dict`` in our key names.
        check: ``model -> None``, raising ``ArchitectureMismatchError`` when the model's configuration is not
            the source network's.
        priority: among several converters that detect a checkpoint, the highest wins (specific families over
            generic ones).
        classifier, first_conv: our module names of the classifier and first convolution, where the generic
            detection would not find them.
        notes: what the conversion does beyond renaming (permutations, reshapes), for the weights table.
    """

    name: str
    source: str
    model_types: tuple[type, ...]
    detect: Callable[[Sequence[str]], bool]
    convert: Callable[[StateDict, nn.Module], StateDict]
    models: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[nn.Module], None] | None = None
    priority: int = 0
    classifier: tuple[str, ...] = ()
    first_conv: str | None = None
    notes: str = ""

    def applies_to(self, model: nn.Module) -> bool:
        return isinstance(model, self.model_types)


_CONVERTERS: dict[str, Converter] = {}


def register_converter(converter: Converter) -> Converter:
    """Add ``converter`` to the registry (names are unique)."""
    if not isinstance(converter, Converter):
        raise TypeError(f"expected a Converter, got {type(converter).__name__}")
    old = _CONVERTERS.get(converter.name)
    if old is not None and old is not converter:
        raise ValueError(f"converter {converter.name!r} is already registered")
    _CONVERTERS[converter.name] = converter
    return converter


def unregister_converter(name: str) -> None:
    _CONVERTERS.pop(name, None)


def list_converters(model: nn.Module | None = None) -> list[str]:
    """Sorted converter names (those that apply to ``model`` when given)."""
    return sorted(n for n, c in _CONVERTERS.items() if model is None or c.applies_to(model))


def get_converter(name: str) -> Converter:
    try:
        return _CONVERTERS[name]
    except KeyError:
        raise LayoutError(f"unknown checkpoint layout {name!r}; known: {OURS!r}, "
                          f"{', '.join(repr(n) for n in sorted(_CONVERTERS))}") from None


def _overlap(keys: Sequence[str], own: Sequence[str]) -> float:
    own_set = set(own)
    return sum(k in own_set for k in keys) / max(1, len(keys))


def _nearest_converter(model: nn.Module, state_dict: Mapping[str, torch.Tensor], own: Sequence[str],
                       threshold: float = 0.9) -> Converter | None:
    """The converter for ``model`` whose renamed keys are nearly all the model's (>= ``threshold``), when no
    detector recognised the checkpoint: a checkpoint lacking one of the keys a detector looks for is still in that
    layout, and the strict load then names what is missing instead of "unrecognised layout"."""
    scored = []
    for order, conv in enumerate(_CONVERTERS.values()):
        if not conv.applies_to(model):
            continue
        try:
            renamed = conv.convert(dict(state_dict), model)
        except Exception:  # noqa: BLE001 - a converter may refuse keys of another layout in its own way
            continue
        overlap = _overlap(list(renamed), own)
        if overlap >= threshold:  # the best overlap; among equals the most generic layout (lowest priority: a
            scored.append((overlap, -conv.priority, -order, conv))  # specialised one's detector would have fired)
    return max(scored, key=lambda t: t[:3])[3] if scored else None


def find_converter(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                   layout: str | None = None) -> Converter | None:
    """The converter for loading ``state_dict`` into ``model`` (``None``: it is already in our layout).

    ``layout`` forces one (a converter name, or ``"visionblocks"``).  Otherwise the layout is recognised from the
    keys; a checkpoint in a layout known for another kind of model is refused naming that layout.
    """
    if layout is not None:
        if layout == OURS:
            return None
        conv = get_converter(layout)
        if not conv.applies_to(model):
            raise LayoutError(f"layout {layout!r} loads into {', '.join(t.__name__ for t in conv.model_types)}, "
                              f"not {type(model).__name__}")
        return conv
    keys = list(state_dict)
    own = list(model.state_dict())
    if keys and _overlap(keys, own) == 1.0:  # every key is one of ours
        return None
    found = [c for c in _CONVERTERS.values() if c.detect(keys)]
    usable = sorted((c for c in found if c.applies_to(model)), key=lambda c: -c.priority)
    if usable:
        if len(usable) > 1 and usable[0].priority == usable[1].priority:
            raise LayoutError(f"the checkpoint matches several layouts ({', '.join(c.name for c in usable)}); "
                              f"pass layout= to choose")
        return usable[0]
    if found:
        names = ", ".join(f"{c.name} (for {', '.join(t.__name__ for t in c.model_types)})" for c in found)
        raise LayoutError(f"the checkpoint is in the layout of {names}, which does not load into "
                          f"{type(model).__name__}: is it a checkpoint of another model?")
    if _overlap(keys, own) >= 0.5:  # ours, with differences the strict load names
        return None
    near = _nearest_converter(model, state_dict, own)
    if near is not None:  # a known layout whose detector missed a key it looks for (a damaged checkpoint)
        return near
    mine = list_converters(model)
    raise LayoutError(f"unrecognised checkpoint layout for {type(model).__name__}: its first keys are "
                      f"{keys[:4]}, the model's are {own[:4]}; layouts known for this model: "
                      f"{', '.join([OURS] + mine)}{_unrecognised_hint(model, keys, own)}")


def _unrecognised_hint(model: nn.Module, keys: Sequence[str], own: Sequence[str]) -> str:
    """What an unrecognised checkpoint may be: one of another architecture in our layout (some keys shared), a
    training form's for a folded model, or a folded one's for a training form."""
    folded = any(getattr(m, "is_reparameterized", False) is True for m in model.modules()) or (
        not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        and any(k.endswith("running_mean") for k in keys))
    if folded:
        return ("; this model is folded (vb.reparameterize/vb.fuse) and the checkpoint looks like a training form's: "
                "load it into the model before folding it")
    unfolded = folded_hint(model)
    if unfolded:
        return unfolded
    shared = len(set(own).intersection(keys))
    return (f"; {shared} of its {len(keys)} keys are this model's: a checkpoint of another architecture (depth, "
            "width, options)?") if shared else ""


def folded_hint(model: nn.Module) -> str:
    """A hint for an error about a checkpoint that may be a folded one: ``model`` has re-parameterizable parts not
    yet folded (``vb.reparameterize``/``vb.fuse`` write other keys than the training form's)."""
    from visionblocks.reparam import is_reparameterizable
    if any(is_reparameterizable(m) and not getattr(m, "is_reparameterized", False) for m in model.modules()):
        return ("; if the checkpoint was saved after vb.reparameterize/vb.fuse, load it into the inference form "
                "(create_model(..., deploy=True), or fold this model first)")
    return ""


def rename_keys(state_dict: Mapping[str, torch.Tensor],
                rules: Sequence[tuple[str, str | Callable[[re.Match], str]]]) -> StateDict:
    """Rename every key by the first matching ``(regex, replacement)`` rule (``re.fullmatch``; the replacement
    is a template for ``Match.expand`` or a function of the match); keys that no rule matches are kept as they
    are (a strict load then names them)."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out: StateDict = {}
    for k, v in state_dict.items():
        for pat, rep in compiled:
            m = pat.fullmatch(k)
            if m:
                k = rep(m) if callable(rep) else m.expand(rep)
                break
        out[k] = v
    return out
