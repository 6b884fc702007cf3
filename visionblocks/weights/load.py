"""Loading a (converted) state dict into a model: validated in full first, then copied, or nothing is.

What may legitimately differ between a checkpoint and the model, and how each case is reported:

* **blocks the model adds** to the checkpoint's network (``create_model("resnet50", attn="cbam")`` loading a
  plain ResNet-50): every key of such a block is absent from the checkpoint.  Those blocks keep their
  initialisation and their keys are listed in ``LoadResult.missing_keys`` and ``LoadResult.added_keys``.  Which
  modules count as added is computed from the model (:func:`added_modules`) and can be overridden with
  ``allow_missing=``;
* **the classifier**, when the model's ``num_classes`` differs from the checkpoint's: the checkpoint's
  classifier tensors are dropped (``dropped_keys``, and a warning), the model's stays at its initialisation (as
  it does, with a warning, for a headless checkpoint);
* **the first convolution**, when the model's ``in_chans`` is not the checkpoint's 3: summed over the input
  channels for 1, repeated and scaled by ``3 / in_chans`` otherwise (``adapted_keys``);
* BatchNorm's ``num_batches_tracked`` counters, which old checkpoints lack (not weights; left as they are).

Anything else missing or unexpected is an error under ``strict=True`` (naming every key; nothing loaded) and is
returned under ``strict=False``.  A tensor of the wrong shape or kind is always an error naming the key and both
shapes or kinds.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from visionblocks.features import FeatureListNet
from visionblocks.layers import to_names
from visionblocks.layers.validate import check_module

from ._io import check_keys
from .convert import OURS, Converter, find_converter, folded_hint
from .errors import CheckpointError, StateDictMismatchError

__all__ = ["LoadResult", "load_state_dict", "added_modules", "classifier_names", "first_conv_name",
           "adapt_input_conv", "register_added_modules"]

_OPTIONAL_SUFFIXES = ("num_batches_tracked",)
_ADDED_RULES: list[tuple[type, object]] = []
_MAX_NAMED = 20
# the network to fill comes first, the checkpoint second
_MODEL_FIRST = "the model to fill as its first argument (an nn.Module)"


@dataclass
class LoadResult:
    """What a load did.  ``missing_keys`` are the model's keys the checkpoint did not provide (under
    ``strict=True`` only the expected ones: ``added_keys`` and a replaced classifier); ``unexpected_keys`` the
    checkpoint's keys the model has no place for (empty under ``strict=True``)."""

    layout: str
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    added_keys: list[str] = field(default_factory=list)
    dropped_keys: list[str] = field(default_factory=list)
    adapted_keys: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"layout {self.layout}", f"{len(self.missing_keys)} missing", f"{len(self.unexpected_keys)} unexpected"]
        return "LoadResult(" + ", ".join(parts) + (": " + "; ".join(self.messages) if self.messages else "") + ")"


def register_added_modules(model_type: type, fn) -> None:
    """Teach :func:`added_modules` which modules of ``model_type`` are added to its backbone:
    ``fn(model) -> list of module names``."""
    _ADDED_RULES.append((model_type, fn))


def _cfg(model: nn.Module) -> Mapping:
    cfg = getattr(model, "pretrained_cfg", None)
    return cfg if isinstance(cfg, Mapping) else {}


def added_modules(model: nn.Module) -> list[str]:
    """Names of the modules ``model`` adds to the network a backbone checkpoint describes: its plug-in
    attention (submodules stored as ``attn`` that are not ``nn.Identity``) and whatever the model class
    registers (:func:`register_added_modules`, e.g. ResNet's stage attention); ``pretrained_cfg["added_modules"]``
    overrides all of it."""
    cfg = _cfg(model)
    if "added_modules" in cfg:
        return list(cfg["added_modules"])
    names: list[str] = []
    for name, m in model.named_modules():
        for slot in ("attn",):
            child = getattr(m, slot, None)
            if isinstance(child, nn.Module) and not isinstance(child, nn.Identity) and \
                    any(True for _ in child.state_dict()):
                names.append(f"{name}.{slot}" if name else slot)
    for model_type, fn in _ADDED_RULES:
        if isinstance(model, model_type):
            names.extend(fn(model))
    return sorted(set(names))


def classifier_names(model: nn.Module, converter: Converter | None = None) -> list[str]:
    """Module names of the classifier(s): ``pretrained_cfg["classifier"]``, the converter's, else ``head.fc``/
    ``head``/``fc``/``classifier`` (a Linear, or the Identity of ``num_classes=0``), else the last Linear."""
    cfg = _cfg(model)
    if cfg.get("classifier"):
        return list(to_names(cfg["classifier"]))
    if converter is not None and converter.classifier:
        return list(converter.classifier)
    mods = dict(model.named_modules())
    for name in ("head.fc", "head", "fc", "classifier", "head.classifier"):
        if isinstance(mods.get(name), (nn.Linear, nn.Identity)):
            return [name]
    linears = [n for n, m in mods.items() if isinstance(m, nn.Linear)]
    return linears[-1:]


def first_conv_name(model: nn.Module, converter: Converter | None = None) -> str | None:
    """Module name of the convolution that reads the image: ``pretrained_cfg["first_conv"]``, the converter's,
    else the first ``nn.Conv2d`` with ``in_channels == model.in_chans``."""
    cfg = _cfg(model)
    if cfg.get("first_conv"):
        return cfg["first_conv"]
    if converter is not None and converter.first_conv:
        return converter.first_conv
    in_chans = getattr(model, "in_chans", 3)
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == in_chans:
            return name
    return None


def adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    """A 3-channel first-convolution kernel for ``in_chans`` inputs: summed over the colour channels for one,
    repeated (and scaled by ``3 / in_chans`` to keep the activation scale) for more."""
    if weight.shape[1] != 3:
        raise ValueError(f"can only adapt a 3-channel first convolution, got {tuple(weight.shape)}")
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = math.ceil(in_chans / 3)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (3 / in_chans)


def _prefix_keys(keys: Sequence[str], prefix: str) -> list[str]:
    return [k for k in keys if k.startswith(prefix + ".")]


def _named(keys: Sequence[str]) -> str:
    keys = list(keys)
    more = f" ... and {len(keys) - _MAX_NAMED} more" if len(keys) > _MAX_NAMED else ""
    return ", ".join(keys[:_MAX_NAMED]) + more


def _another_class_count(sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], ck: list[str],
                         mine: list[str]) -> bool:
    """Whether the checkpoint's classifier ``ck`` is the model's ``mine`` for another number of classes: the same
    keys, each tensor shaped as the model's but in its first (class) dimension, one class count throughout.  A
    classifier damaged otherwise (a key missing, another input width) is not dropped: the load names it."""
    if sorted(ck) != sorted(mine):
        return False
    counts = {sd[k].shape[0] if sd[k].ndim else None for k in ck}
    return (len(counts) == 1 and None not in counts and all(
        sd[k].shape[1:] == own[k].shape[1:] and sd[k].shape[0] != own[k].shape[0] for k in ck))


def _align_model_prefix(sd: dict, own: list[str]) -> dict:
    """A ``model.`` prefix on every key of one side only (a feature extractor's ``FeatureListNet.model``, a Lightning
    module's ``self.model``) is removed from, or added to, the checkpoint's keys."""
    p = "model."
    ck_all, own_all = all(k.startswith(p) for k in sd), all(k.startswith(p) for k in own)
    if sd and own and ck_all and not own_all:
        return {k[len(p):]: v for k, v in sd.items()}
    if sd and own and own_all and not ck_all:
        return {p + k: v for k, v in sd.items()}
    return sd



def holds_every_key(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` (in our layout, a ``model.`` prefix aligned as the loader does) has every key of
    ``model`` (optional buffers aside): a checkpoint of this very network, or of a larger one."""
    own = list(model.state_dict())
    sd = _align_model_prefix(dict(state_dict), own)
    return all(k in sd for k in own if not k.endswith(_OPTIONAL_SUFFIXES))

def _kind(t) -> str:
    if not isinstance(t, torch.Tensor):
        return type(t).__name__
    if type(t) not in (torch.Tensor, nn.Parameter):
        return f"{type(t).__name__} (a tensor subclass)"
    if t.layout != torch.strided:
        return f"{str(t.layout).replace('torch.', '')} tensor"
    return "meta tensor" if t.is_meta else str(t.dtype).replace("torch.", "")


def _loadable(value, target: torch.Tensor) -> bool:
    """Whether ``value`` can be copied into ``target`` without losing its meaning: a plain tensor with values
    (not meta unless the target is, not a sharded DTensor or other subclass) of the same kind (floating into floating, of any
    precision; integer or boolean into the same type), dense (not sparse)."""
    if type(value) not in (torch.Tensor, nn.Parameter) or value.layout != torch.strided or \
            (value.is_meta and not target.is_meta):
        return False  # (meta into meta: a dry run on a model built on the meta device)
    if target.is_floating_point():
        return value.is_floating_point()
    if target.is_complex():
        return value.is_complex() or value.is_floating_point()
    return not value.is_floating_point() and not value.is_complex() and (value.dtype == torch.bool) == \
        (target.dtype == torch.bool)


def _convert(converter: Converter, sd: dict, model: nn.Module) -> dict:
    """``converter``'s state dict of ``sd`` for ``model``; a checkpoint it cannot read is a CheckpointError."""
    if converter.check is not None:
        converter.check(model)
    try:
        return dict(converter.convert(sd, model))
    except (KeyError, IndexError, RuntimeError, TypeError, AttributeError) as e:
        # (a key the layout's other keys promised is absent, a tensor of another rank): nothing is loaded yet
        raise CheckpointError(f"cannot convert the checkpoint with the {converter.name} converter for "
                              f"{type(model).__name__} ({type(e).__name__}: {e}): a damaged checkpoint, or one of "
                              f"another layout (layout= names it); nothing was loaded") from e


def load_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True,
                    layout: str | None = None, allow_missing: str | Sequence[str] | None = "added",
                    converter: Converter | None = None) -> LoadResult:
    """Convert ``state_dict`` from its layout (recognised from its keys, or ``layout=``) and load it.

    ``allow_missing``: module names whose keys may all be absent (kept at their initialisation and reported);
    ``"added"`` (default) is :func:`added_modules` of the model, ``None`` or ``()`` allows none.
    Raises :class:`StateDictMismatchError` (nothing loaded) on a shape mismatch or a tensor of the wrong kind (a
    complex, boolean or integer tensor for a floating-point parameter, a meta tensor, a sharded ``DTensor``), or
    under ``strict=True`` on keys missing or unexpected beyond the cases the module docstring lists.
    """
    check_module(model, "load_state_dict", _MODEL_FIRST)
    # a torch.compile'd model (OptimizedModule) holds the network's parameters under _orig_mod: loaded there, the
    # compiled one runs them
    if type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module):
        model = model._orig_mod
    own = model.state_dict()
    sd = _align_model_prefix(check_keys(state_dict), list(own))
    pruned: list[str] = []
    extractor_layout = OURS
    if isinstance(model, FeatureListNet) and converter is None and not holds_every_key(model, sd):
        # a whole network's checkpoint in another layout (torchvision's, timm's, an author's): converted as for the
        # extractor's network, then ours (the parts features_only pruned go below)
        inner = _align_model_prefix(sd, list(model.model.state_dict()))
        inner_converter = find_converter(model.model, inner, layout)
        if inner_converter is not None:
            sd = _align_model_prefix(_convert(inner_converter, inner, model.model), list(own))
            layout, extractor_layout = OURS, inner_converter.name
    if isinstance(model, FeatureListNet) and holds_every_key(model, sd):
        # a whole network's checkpoint (ours, every key of the extractor in it): the parts features_only pruned go
        pruned = [k for k in sd if k not in own]
        for k in pruned:
            del sd[k]
    if converter is None:
        converter = find_converter(model, sd, layout)
    if converter is not None:
        sd = _convert(converter, sd, model)
    result = LoadResult(layout=converter.name if converter else extractor_layout)
    if pruned:
        result.dropped_keys += pruned
        result.messages.append(f"dropped {len(pruned)} keys of the parts features_only pruned")

    # the classifier, when the model's class count differs from the checkpoint's
    expected_missing: set[str] = set()
    for cls in classifier_names(model, converter):
        ck = _prefix_keys(sd, cls)
        mine = _prefix_keys(own, cls)
        if ck and (not mine or _another_class_count(sd, own, ck, mine)):
            n_ck = sd[f"{cls}.weight"].shape[0] if f"{cls}.weight" in sd else "?"
            n_own = own[f"{cls}.weight"].shape[0] if f"{cls}.weight" in own else 0
            for k in ck:
                del sd[k]
            result.dropped_keys += ck
            expected_missing.update(mine)
            result.messages.append(f"dropped the checkpoint's {n_ck}-class classifier ({', '.join(ck)}): " + (
                f"the model has {n_own} classes; {cls} keeps its initialisation" if mine else
                f"the model has no classifier ({cls}: num_classes=0)"))
        elif not ck and mine:  # a headless (num_classes=0, feature-extractor) checkpoint
            expected_missing.update(mine)
            result.messages.append(f"the checkpoint has no classifier: {cls} keeps its initialisation")

    # the convolutions that read the image, when the model reads other than 3 channels: the first one, and any
    # other weight with in_chans input channels where the checkpoint's has 3 (RepVGG's stem has two branches)
    conv = first_conv_name(model, converter)
    wk = f"{conv}.weight" if conv else None
    in_chans = getattr(model, "in_chans", 3)
    others = [k for k in own if k != wk and k.endswith(".weight") and in_chans != 3 and own[k].ndim == 4
              and own[k].shape[1] == in_chans]
    for k in ([wk] if wk else []) + others:
        if k in sd and k in own and sd[k].ndim == 4 and sd[k].shape[1] == 3 and own[k].shape[1] != 3 \
                and sd[k].shape[0] == own[k].shape[0] and sd[k].shape[2:] == own[k].shape[2:] \
                and _loadable(sd[k], own[k]):
            # (summed in the model's precision at least: a float16 checkpoint's sum rounds otherwise)
            acc = torch.promote_types(sd[k].dtype, own[k].dtype)
            sd[k] = adapt_input_conv(own[k].shape[1], sd[k].to(acc))
            result.adapted_keys.append(k)
            result.messages.append(f"adapted {k} from 3 input channels to {own[k].shape[1]}")

    missing = [k for k in own if k not in sd and not k.endswith(_OPTIONAL_SUFFIXES)]
    unexpected = [k for k in sd if k not in own]
    mismatched = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in sd
                  if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]

    prefixes = added_modules(model) if allow_missing == "added" else list(allow_missing or ())
    missing_set = set(missing)
    # modules of one kind may be absent only all together: a backbone checkpoint has none of them, while a
    # checkpoint that has some (an SE-ResNet's, say) and lacks others is damaged
    modules = dict(model.named_modules())
    kinds: dict[type, list[tuple[str, list[str]]]] = {}
    for p in prefixes:
        keys = [k for k in _prefix_keys(own, p) if not k.endswith(_OPTIONAL_SUFFIXES)]
        if keys:
            kinds.setdefault(type(modules.get(p)), []).append((p, keys))
    for entries in kinds.values():
        if all(k in missing_set for _, keys in entries for k in keys):
            result.added_keys += [k for _, keys in entries for k in keys]
    expected_missing.update(result.added_keys)
    unexplained = [k for k in missing if k not in expected_missing]

    wrong_kind = [(k, _kind(sd[k]), _kind(own[k])) for k in sd if k in own and not _loadable(sd[k], own[k])]

    errors = []
    if wrong_kind:
        errors.append("wrong kinds of tensor: " + "; ".join(f"{k}: checkpoint {a}, model {b}"
                                                           for k, a, b in wrong_kind[:_MAX_NAMED]))
    if mismatched:
        errors.append("wrong shapes: " + "; ".join(f"{k}: checkpoint {a}, model {b}" for k, a, b in mismatched[:_MAX_NAMED]))
    if strict and unexplained:
        errors.append(f"missing from the checkpoint ({len(unexplained)}): {_named(unexplained)}")
    if strict and unexpected:
        errors.append(f"unexpected in the checkpoint ({len(unexpected)}): {_named(unexpected)}")
    if errors:
        fused = (any(k.endswith(".running_mean") for k in unexplained)
                 and any(k.endswith(".bias") and k[:-5] + ".weight" in own for k in unexpected))
        hint = ("; the checkpoint looks fused (convolution biases where the model has BatchNorms): vb.fuse the "
                "model before loading it" if fused else "") + (folded_hint(model) if strict and unexplained else "")
        raise StateDictMismatchError(
            f"cannot load the {result.layout} checkpoint into {type(model).__name__} (nothing was loaded): "
            + " | ".join(errors) + hint, missing=unexplained, unexpected=unexpected,
            mismatched=mismatched + [(k, a, b) for k, a, b in wrong_kind])

    full = {k: sd.get(k, v) for k, v in own.items()}
    model.load_state_dict(full, strict=True)
    result.missing_keys = missing
    result.unexpected_keys = unexpected
    if result.added_keys:
        mods = sorted({p for p in prefixes if any(k.startswith(p + ".") for k in result.added_keys)})
        result.messages.append(f"{len(mods)} module(s) the model adds to the checkpoint's network keep their "
                               f"initialisation ({_named(mods)})")
    if not strict and (unexplained or unexpected):
        result.messages.append(f"{len(unexplained)} keys missing, {len(unexpected)} unexpected (strict=False)")
    if any(not m.startswith("adapted") for m in result.messages):
        warnings.warn(f"{type(model).__name__}: " + "; ".join(m for m in result.messages
                                                               if not m.startswith("adapted")), stacklevel=3)
    return result
