"""``insert``: a new block after chosen modules of any ``nn.Module``, its channel count read off the network, and
the standard placements of the papers as presets.

Presets (``preset=``):

* ``"se"``: on the residual branch after its last norm, before the addition -- where SENet (Hu et al., arXiv
  1709.01507), CBAM (Woo et al., arXiv 1807.06521) and ECA-Net (Wang et al., arXiv 1910.03151, also for
  MobileNetV2) put their gates -- in every block of a ResNet/ResNeXt (torchvision, timm, visionblocks) and every
  inverted residual of a MobileNetV2/V3 or EfficientNet (torchvision, timm, visionblocks).  Where a block already
  has an attention module at that place, the new block goes right after it.  (The SE that MobileNetV3 and
  EfficientNet have on the expanded features stays where it is.)
* ``"stage-end"``: after every stage but the last, BAM's place (Park et al., arXiv 1807.06514), for ResNets and
  ResNeXts (torchvision, timm, visionblocks).

A preset recognises architectures by their block classes and says so when it recognises none; it never guesses.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

from visionblocks.layers.validate import check_module
from visionblocks.reparam import mark_inserted

from ._core import (
    BlockSpec, Edit, Selector, SurgeryError, SurgeryReport, apply_edits, count_params, default_input, logger,
    first_probe, parent_and_key, place_like, resolve_block, select_modules, verify_forward,
)

__all__ = ["InsertedAfter", "PRESETS", "insert"]


def _free_index_key(seq: nn.Sequential) -> str:
    """The key a module appended to ``seq`` gets: ``str(len(seq))`` as ``nn.Sequential.append`` gives, or the next
    integer key not taken (a Sequential built from an OrderedDict may hold a module under the key "2" at index 0)."""
    n = len(seq)
    while str(n) in seq._modules:
        n += 1
    return str(n)


class InsertedAfter(nn.Module):
    """``block(module(*args))``: a block inserted after a module that is not an ``nn.Sequential``.

    Attributes the wrapped module has and the wrapper does not (``out_channels``, a framework's bookkeeping such as
    ultralytics' ``f``/``i``) read through to it.  A state dict saved before the insertion (keys without
    ``module.``) still loads: its keys are mapped onto ``module.`` (the block's own keys are then missing, so load
    it with ``strict=False``).
    """

    def __init__(self, module: nn.Module, block: nn.Module):
        super().__init__()
        self.module = module
        self.block = block
        self.training = module.training  # the wrapper takes the mode of the module it stands for
        self._register_load_state_dict_pre_hook(self._map_original_keys)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.block(self.module(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            if "module" in modules and not name.startswith("__"):
                return getattr(modules["module"], name)
            raise

    def _map_original_keys(self, state_dict, prefix, *args) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            rest = key[len(prefix):]
            if not rest.startswith(("module.", "block.")) and prefix + "module." + rest not in state_dict:
                state_dict[prefix + "module." + rest] = state_dict.pop(key)


# ------------------------------------------------------------------------------------------------- placements
# A place is (kind, module name): "slot" puts the block in an nn.Identity / None attribute (or after what occupies
# it), "append" appends it to an nn.Sequential, "after" inserts it after a module.


def _slot(attr: str) -> Callable[[str, nn.Module], tuple[str, str]]:
    return lambda name, m: ("slot", f"{name}.{attr}")


def _append(attr: str) -> Callable[[str, nn.Module], tuple[str, str]]:
    return lambda name, m: ("append", f"{name}.{attr}")


def _after(attr: str) -> Callable[[str, nn.Module], tuple[str, str]]:
    return lambda name, m: ("after", f"{name}.{attr}")


#: "se": (module, class) of a block -> its place.
_SE_PLACES: dict[tuple[str, str], Callable[[str, nn.Module], tuple[str, str]]] = {
    ("visionblocks.models.resnet", "Bottleneck"): _slot("attn"),
    ("visionblocks.models.resnet", "BasicBlock"): _slot("attn"),
    ("visionblocks.blocks.conv.mbconv", "MBConv"): _after("conv_pwl"),
    ("visionblocks.models.efficientnet", "CondConvMBConv"): _after("bn3"),
    ("torchvision.models.resnet", "Bottleneck"): _after("bn3"),
    ("torchvision.models.resnet", "BasicBlock"): _after("bn2"),
    ("torchvision.models.mobilenetv2", "InvertedResidual"): _append("conv"),
    ("torchvision.models.mobilenetv3", "InvertedResidual"): _append("block"),
    ("torchvision.models.efficientnet", "MBConv"): _append("block"),
    ("torchvision.models.efficientnet", "FusedMBConv"): _append("block"),
    ("timm.models.resnet", "Bottleneck"): _slot("se"),
    ("timm.models.resnet", "BasicBlock"): _slot("se"),
    ("timm.models._efficientnet_blocks", "InvertedResidual"): _after("bn3"),
    ("timm.models._efficientnet_blocks", "DepthwiseSeparableConv"): _after("bn2"),
    ("timm.models._efficientnet_blocks", "EdgeResidual"): _after("bn2"),
}


def _resnet_stages(prefix: str, names: tuple[str, ...]) -> Callable[[str, nn.Module], list[tuple[str, str]]]:
    def places(name: str, m: nn.Module) -> list[tuple[str, str]]:
        base = f"{name}." if name else ""
        return [("append", base + n) for n in names]
    return places


def _our_stages(name: str, m: nn.Module) -> list[tuple[str, str]]:
    base = f"{name}." if name else ""
    return [("append", f"{base}stages.{i}") for i in range(len(m.stages) - 1)]


#: "stage-end": (module, class) of a network -> the places after each of its stages but the last.
_STAGE_PLACES: dict[tuple[str, str], Callable[[str, nn.Module], list[tuple[str, str]]]] = {
    ("visionblocks.models.resnet", "ResNet"): _our_stages,
    ("torchvision.models.resnet", "ResNet"): _resnet_stages("", ("layer1", "layer2", "layer3")),
    ("timm.models.resnet", "ResNet"): _resnet_stages("", ("layer1", "layer2", "layer3")),
}

PRESETS = {
    "se": "on the residual branch after its last norm, before the addition (SENet/CBAM/ECA): ResNet/ResNeXt "
          "blocks, MobileNetV2/V3 and EfficientNet inverted residuals",
    "stage-end": "after every stage but the last (BAM): ResNet/ResNeXt",
}


def _rule(table: dict, module: nn.Module):
    for cls in type(module).__mro__:
        rule = table.get((cls.__module__, cls.__qualname__))
        if rule is not None:
            return rule
    return None


def _known(table: dict) -> str:
    return ", ".join(f"{mod.split('.')[0]} {qual}" for mod, qual in table)


def preset_places(model: nn.Module, preset: str) -> list[tuple[str, str]]:
    """The places preset ``preset`` finds in ``model``; :class:`SurgeryError` when it recognises nothing."""
    if preset not in PRESETS:
        raise SurgeryError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    table = _SE_PLACES if preset == "se" else _STAGE_PLACES
    places: list[tuple[str, str]] = []
    for name, module in model.named_modules():
        rule = _rule(table, module)
        if rule is None:
            continue
        found = rule(name, module)
        places.extend(found if isinstance(found, list) else [found])
    if not places:
        raise SurgeryError(f"preset {preset!r} does not recognise the architecture of {type(model).__name__}: it "
                           f"knows the classes {_known(table)}; choose the places yourself with after=")
    return [(kind, name.lstrip(".")) for kind, name in places]


# ------------------------------------------------------------------------------------------------------ insert


def _placement(model: nn.Module, kind: str, name: str) -> tuple[str, str, nn.Module | None]:
    """Resolve a place to ``(kind, name of the module whose output the block takes, that module)``: a free slot is
    probed through its parent's use of it, so its input is what the block receives."""
    try:
        return _resolve_place(model, kind, name)
    except AttributeError as e:  # a preset's class whose attributes changed in another version of its library
        raise SurgeryError(f"cannot find {name!r} in {type(model).__name__} ({e}); the preset does not know this "
                           "version of the architecture: choose the places with after=") from e


def _resolve_place(model: nn.Module, kind: str, name: str) -> tuple[str, str, nn.Module | None]:
    if kind == "slot":
        parent, key = parent_and_key(model, name)
        occupant = parent._modules.get(key)
        if occupant is None and parent.__dict__.get(key, 0) is not None:
            raise SurgeryError(f"{type(parent).__name__} at {name.rpartition('.')[0]!r} has no {key!r} slot")
        if occupant is None or type(occupant) is nn.Identity:
            return "slot", name, occupant
        return ("append" if type(occupant) is nn.Sequential else "after"), name, occupant
    module = model.get_submodule(name)
    if kind == "after" and type(module) is nn.Sequential:
        return "append", name, module
    return kind, name, module


def insert(model: nn.Module, block: Any, /, after: Selector | None = None, example_input: Any = None, *,
           preset: str | None = None, **block_kwargs: Any) -> SurgeryReport:
    """Put a new ``block`` after every module of ``model`` that ``after`` matches (or at the places of ``preset``).

    Args:
        model: any ``nn.Module``; edited in place.
        block: a registry name (an ``nchw`` block, or a ``conv``-layout block that keeps the shape), a module class
            or a factory; it is built as ``block(channels, **block_kwargs)`` (a ``conv`` block as
            ``block(channels, out_channels=channels, ...)``; a fixed-size block also gets ``size=(H, W)``).
        after: a glob over qualified module names (``"layer*.*.bn3"``; ``*`` matches dots too), a module class, or a
            callable ``(name, module) -> bool``.  The block goes after the module (appended to it when it is an
            ``nn.Sequential``, else the module is wrapped in :class:`InsertedAfter`).
        example_input: the probe input (a tensor, or a tuple of inputs); default ``(1, C, 224, 224)`` with C the
            first convolution's input channels.
        preset: ``"se"`` or ``"stage-end"`` instead of ``after`` (see the module docstring).
        block_kwargs: further constructor arguments of the block.

    The channel count of each new block is the channel count of the module's output in a probe forward (eval mode,
    no autograd, global random state untouched).  Every surgery is verified by a second forward: the model's output
    shapes must not change, and each new block must give back its input's shape.

    Returns:
        a :class:`SurgeryReport`: the names of the new modules, with the parameters added.

    Raises:
        SurgeryError (a ``ValueError``): no module matched, an output that is not (B, C, H, W), a block that cannot
        be built or changes the shape.  The model is then exactly as it was.
    """
    check_module(model, "insert", "the model as an nn.Module (built, e.g. by vb.create_model)")
    if (after is None) == (preset is None):
        raise TypeError("insert: pass exactly one of after= (a selector) and preset= (" + ", ".join(PRESETS) + ")")
    spec = resolve_block(block)
    if spec.info is not None and spec.info.layout not in ("nchw", "conv"):
        raise SurgeryError(f"insert takes blocks that map (B, C, H, W) to the same shape ('nchw' blocks, or 'conv' "
                           f"blocks that keep the shape); {spec.name!r} has layout {spec.info.layout!r}")
    if preset is not None:
        places = [_placement(model, kind, name) for kind, name in preset_places(model, preset)]
    else:
        places = [_placement(model, "after", name) for name, _ in select_modules(model, after, "after")]
    return _insert_at(model, spec, places, example_input, block_kwargs,
                      f"insert {spec.name} at preset {preset!r}" if preset else f"insert {spec.name}")


def _insert_at(model: nn.Module, spec: BlockSpec, places: list[tuple[str, str, nn.Module | None]],
               example_input: Any, block_kwargs: dict, label: str) -> SurgeryReport:
    if example_input is None:
        example_input = default_input(model)
    # 1. probe: the tensor each block will receive (the module's output; a free slot's input)
    watch, seen = {}, set()
    for kind, name, module in places:
        if kind == "slot":
            watch[name] = model.get_submodule(name) if module is not None else None
        else:
            watch[name] = module
    free_slots = {n for n, m in watch.items() if m is None}
    calls: list[tuple[nn.Module, str]] = []  # (parent, child key) in call order, for the free slots' parents
    handles = []
    for name in free_slots:  # a None slot is not called: probe what it would receive in an identity's place
        parent, key = parent_and_key(model, name)
        watch[name] = _SlotProbe()
        Edit(parent, key, watch[name]).apply()
        for child_key, child in parent._modules.items():
            handles.append(child.register_forward_hook(
                lambda m, a, o, parent=parent, child_key=child_key: calls.append((parent, child_key))))
    try:
        probe = first_probe(model, example_input, {n: m for n, m in watch.items()}, watch, label)
    finally:
        for h in handles:
            h.remove()
        for name in free_slots:
            parent, key = parent_and_key(model, name)
            del parent._modules[key]
            object.__setattr__(parent, key, None)
    # a filled free slot is registered after the sibling that runs right before it (timm's "se" after "bn3"), so the
    # module order (printing, state-dict order) is that of a block built with the attention
    slot_after = {}
    for name in free_slots:
        parent, key = parent_and_key(model, name)
        order = [k for p, k in calls if p is parent]
        if key in order and order.index(key) > 0:
            slot_after[name] = order[order.index(key) - 1]
    # 2. build every block before touching the model
    edits, names, per_module, new_blocks = [], [], {}, {}
    for kind, name, module in places:
        if name in seen:
            continue
        seen.add(name)
        if probe.calls.get(name, 0) == 0:
            raise SurgeryError(f"{label}: module {name!r} did not run in the probe forward, so its output shape is "
                               "unknown; choose modules the forward uses (or pass the right example_input=)")
        out = probe.kept_out[name] if kind != "slot" else probe.kept_in[name]
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise SurgeryError(f"{label}: the output of {name!r} is {shape}, not (B, C, H, W); {spec.name!r} needs a "
                               "feature map")
        last_axis = _last_axis_layer(module, out) if kind != "slot" else None
        if last_axis is not None:
            raise SurgeryError(f"{label}: the output of {name!r} is {tuple(out.shape)}, channels last (B, H, W, C), "
                               f"not (B, C, H, W): its last layer, {last_axis}, works on the last axis (as in "
                               "Swin stages and ConvNeXt blocks with conv_mlp=False); insert after a module whose "
                               "output is (B, C, H, W)")
        channels, size = out.shape[1], tuple(out.shape[2:])
        kwargs = spec.kwargs_for(channels, size, block_kwargs)
        new = spec.build(channels, where=f"{name!r} ({channels} channels)", **kwargs)
        parent, key = parent_and_key(model, name)
        new = mark_inserted(place_like(new, out, (module if module is not None else parent).training))
        if kind == "slot":
            edits.append(Edit(parent, key, new, after=slot_after.get(name)))
            new_name = name
        elif kind == "append":
            seq = model.get_submodule(name)
            new_key = _free_index_key(seq)
            edits.append(Edit(seq, new_key, new))
            new_name = f"{name}.{new_key}"
        else:
            edits.append(Edit(parent, key, InsertedAfter(module, new)))
            new_name = f"{name}.block"
        names.append(new_name)
        new_blocks[new_name] = (new, tuple(out.shape))
        per_module[new_name] = sum(p.numel() for p in new.parameters())
    before = count_params(model)

    # 3. swap in, verify, undo everything on failure
    def mismatch(n: str, shape: tuple, got: tuple | None) -> str:
        return (f"{label}: {spec.name!r} at {n!r} maps {shape} to {got}; a block inserted into a network must keep "
                "the shape (B, C, H, W) of what it receives")

    def check() -> None:
        after_probe = verify_forward(model, example_input, {n: b for n, (b, _) in new_blocks.items()},
                                     {n: shape for n, (_, shape) in new_blocks.items()}, mismatch, label)
        if after_probe.output != probe.output:
            raise SurgeryError(f"{label}: the model's output changed from {probe.output} to {after_probe.output}")

    apply_edits(edits, check)
    # the final names (a block inserted after a module that another insertion wrapped sits one level deeper)
    final = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
    renamed = {old: final.get(id(new_blocks[old][0]), old) for old in names}
    names = [renamed[n] for n in names]
    per_module = {renamed[n]: v for n, v in per_module.items()}
    report = SurgeryReport(names, "insert", spec.name, before, count_params(model), per_module)
    logger.info("%s", report.summary())
    return report


def _last_axis_layer(module: nn.Module | None, out: torch.Tensor) -> str | None:
    """Why the 4-D ``out`` of ``module`` is a channels-last (B, H, W, C) map: the last of its layers with parameters
    is a LayerNorm over the last axis or a Linear, with as many features as that axis has and not as many as axis 1
    (timm's Swin stages and ConvNeXt blocks with ``conv_mlp=False`` pass (B, H, W, C) maps, which an nchw block
    would silently gate along H).  None when nothing says so (where both axes have the size, it cannot tell)."""
    if module is None or out.shape[1] == out.shape[-1]:
        return None
    with_params = [(n, m) for n, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))]
    if not with_params:
        return None
    n, last = with_params[-1]
    what = f"{n!r} ({type(last).__name__}" if n else f"the module itself ({type(last).__name__}"
    if isinstance(last, nn.LayerNorm) and len(last.normalized_shape) == 1 and \
            last.normalized_shape[0] == out.shape[-1]:
        return f"{what} over {out.shape[-1]} features)"
    if isinstance(last, nn.Linear) and last.out_features == out.shape[-1]:
        return f"{what}, {last.out_features} features)"
    return None


class _SlotProbe(nn.Identity):
    """Stands in a free (``None``) slot during the probe, to see what the slot would receive."""
