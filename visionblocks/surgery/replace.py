"""``replace``: swap chosen modules of any ``nn.Module`` for a block built with each one's own geometry.

A convolution followed by its BatchNorm is replaced as one unit when the block normalises its own output (the
re-parameterizable blocks, whose papers replace "conv-BN": ACNet, arXiv 1908.03930; DBB, arXiv 2103.13425; RepVGG,
arXiv 2101.03697; and any block with a ``norm_layer``): the BatchNorm's slot holds an identity while training.
A re-parameterizable block stands in the convolution's slot as a :class:`RepSlot`; ``visionblocks.reparameterize``
folds it back into the original layers -- the convolution (its class and geometry) and the BatchNorm, which takes
the folded bias -- so the network has exactly its original architecture and state-dict keys again (the papers'
promise: a stronger network at no inference cost).
"""
from __future__ import annotations

import copy
import functools
import warnings
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from visionblocks.reparam import is_reparameterizable, mark_inserted, pruning_methods, reparameterize, require_eval

from visionblocks.layers import is_plain_batch_norm
from visionblocks.layers.validate import check_module

from ._core import (
    BlockSpec, Edit, Selector, SurgeryError, SurgeryReport, apply_edits, become, count_params, default_input, logger,
    first_probe, parent_and_key, place_like, resolve_block, select_modules, verify_forward,
)

__all__ = ["AbsorbedNorm", "RepSlot", "replace"]

_GEOMETRY = ("kernel_size", "stride", "padding", "dilation", "groups", "bias", "padding_mode")


def _one(value: Any) -> Any:
    """``(3, 3)`` -> ``3``; unequal pairs stay tuples."""
    if isinstance(value, tuple) and len(set(value)) == 1:
        return value[0]
    return value


def conv_geometry_of(conv: nn.Conv2d) -> dict[str, Any]:
    """A convolution's geometry as constructor arguments (square values as ints)."""
    return {"in_channels": conv.in_channels, "out_channels": conv.out_channels,
            "kernel_size": _one(tuple(conv.kernel_size)), "stride": _one(tuple(conv.stride)),
            "padding": conv.padding if isinstance(conv.padding, str) else _one(tuple(conv.padding)),
            "dilation": _one(tuple(conv.dilation)), "groups": conv.groups, "bias": conv.bias is not None,
            "padding_mode": conv.padding_mode}


def _pair(v: Any) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _same_padding(geom: dict) -> bool:
    """Whether the padding is the centred ``dilation * (k - 1) / 2`` that blocks without a ``padding`` argument
    use."""
    padding = geom.get("padding", 0)
    k, d = _pair(geom.get("kernel_size", 1)), _pair(geom.get("dilation", 1))
    if padding == "same":
        return True
    if padding == "valid":
        padding = 0
    return all(kk % 2 == 1 and p == dd * (kk - 1) // 2 for p, kk, dd in zip(_pair(padding), k, d))


def _kernel_above_one(geom: dict) -> bool:
    return all(k > 1 for k in _pair(geom.get("kernel_size", 1)))


#: What a block needs of a geometry beyond its constructor's own checks: registry name -> [(test, requirement)].
_BLOCK_RULES: dict[str, list[tuple[Callable[[dict], bool], str]]] = {
    "acnet_block": [(_kernel_above_one, "a kxk kernel with k > 1 (its kx1 and 1xk branches strengthen the kxk "
                                        "kernel's skeleton)")],
    "diverse_branch_block": [(_kernel_above_one, "a kxk kernel with k > 1 (its 1x1, 1x1-avg and 1x1-kxk branches "
                                                 "diversify a kxk convolution)")],
    "repvgg_block": [(_kernel_above_one, "a kxk kernel with k > 1 (its 1x1 and identity branches are added to a "
                                         "kxk convolution)")],
}


def _normalises(spec: BlockSpec, block_kwargs: dict) -> bool:
    """Whether ``spec`` ends with its own normalisation, so that it replaces a conv-BN unit: the registered
    re-parameterizable convolutions, and blocks with a ``norm_layer`` that is not ``None``."""
    if spec.info is not None and spec.info.family == "reparam" and spec.info.layout == "conv":
        return True
    return "norm_layer" in spec.params and block_kwargs.get("norm_layer", spec.params["norm_layer"].default) is not None


def _block_call(spec: BlockSpec, geom: dict, user: dict, where: str) -> tuple[tuple, dict]:
    """The ``(args, kwargs)`` that build ``spec`` with geometry ``geom``; :class:`SurgeryError` naming the module,
    the block and what it cannot take."""
    kwargs = dict(user)
    cin, cout = geom["in_channels"], geom["out_channels"]
    params = spec.params

    def cannot(what: str) -> SurgeryError:
        return SurgeryError(f"replace: {spec.name!r} cannot take the geometry of {where}: {what} (its constructor: "
                            f"{spec.name}{spec.signature_text()})")

    if "out_channels" in params:
        if spec.takes_in_out() or cout != cin:
            kwargs.setdefault("out_channels", cout)
    elif cout != cin:
        raise cannot(f"it keeps the channel count, but the module maps {cin} to {cout} channels")
    for key in _GEOMETRY:
        if key not in geom:
            continue
        value = geom[key]
        if key in params:
            kwargs.setdefault(key, value)
            continue
        if key == "stride" and value != 1:
            raise cannot(f"stride={value} (it has no stride argument)")
        if key == "dilation" and value != 1:
            raise cannot(f"dilation={value} (it has no dilation argument)")
        if key == "groups" and value != 1:
            raise cannot(f"groups={value} (it has no groups argument)")
        if key == "padding" and "kernel_size" in geom and not _same_padding(geom):
            raise cannot(f"padding={value} with kernel_size={geom['kernel_size']} (it pads a kxk kernel by "
                         "dilation * (k - 1) / 2 and has no padding argument)")
        if key == "padding_mode" and value != "zeros":
            raise cannot(f"padding_mode={value!r} (it pads with zeros)")
    for test, requirement in _BLOCK_RULES.get(spec.info.name if spec.info else "", ()):
        if not test(geom):
            shown = ", ".join(f"{k}={geom[k]!r}" for k in ("kernel_size", "stride", "dilation", "groups") if k in geom)
            raise cannot(f"it needs {requirement}; got {shown}")
    if "act_layer" in params and "act_layer" not in user:
        kwargs["act_layer"] = None  # the unit it stands in for is linear; the network's own activation follows
    return (cin,), kwargs


# --------------------------------------------------------------------------------------------- fold-back slots


def _meta_copy(module: nn.Module) -> nn.Module:
    """A storage-free copy of ``module`` (its class, configuration and parameter shapes), to rebuild it later."""
    return copy.deepcopy(module).to(device="meta")


def _materialise(template: nn.Module, like: torch.Tensor) -> nn.Module:
    module = copy.deepcopy(template).to_empty(device=like.device)
    return module.to(dtype=like.dtype)


class AbsorbedNorm(nn.Identity):
    """The slot of a BatchNorm whose work a replacing block does (its own norms): the identity while training;
    :meth:`RepSlot.reparameterize` turns it back into the original BatchNorm, holding the folded bias."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.__dict__["template"] = _meta_copy(norm)  # not a child: no parameters, no state-dict keys

    def extra_repr(self) -> str:
        return f"absorbed {type(self.template).__name__}({self.template.num_features})"


class RepSlot(nn.Module):
    """A re-parameterizable block standing in a convolution's slot (with the BatchNorm after it, when it absorbed
    one); :meth:`reparameterize` folds the block and turns this slot back into the original convolution, and the
    absorbed BatchNorm's slot back into a BatchNorm, so the network is again exactly the original architecture."""

    is_reparameterized = False

    def __init__(self, block: nn.Module, conv: nn.Conv2d, norm: AbsorbedNorm | None = None,
                 bias_norm: nn.Module | None = None):
        super().__init__()
        self.block = block
        self.__dict__["template"] = _meta_copy(conv)
        self.__dict__["norm"] = norm  # lives in its own slot of the parent
        # a BatchNorm (kept, not absorbed) that takes the convolution's output: a bias-free convolution's folded
        # bias goes into its running mean (BN(y + b) = BN(y) with running_mean - b, in eval and in training)
        self.__dict__["bias_norm"] = bias_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)

    def reparameterize(self) -> None:
        """Fold the block, then become the original convolution (and the absorbed BatchNorm the original BatchNorm);
        eval mode only."""
        require_eval(self)
        trainable = any(p.requires_grad for p in self.block.parameters())  # (frozen, it folds back frozen)
        reparameterize(self.block)
        folded = _folded_conv(self.block)
        weight = folded.weight.detach()
        bias = folded.bias.detach() if folded.bias is not None else torch.zeros_like(weight[:, 0, 0, 0])
        conv = _materialise(self.template, weight)
        want = (tuple(conv.weight.shape), conv.stride, conv.padding, conv.dilation, conv.groups)
        got = (tuple(weight.shape), folded.stride, folded.padding, folded.dilation, folded.groups)
        if want != got:
            raise RuntimeError(f"{type(self.block).__name__} folded to a convolution of weight, stride, padding, "
                               f"dilation, groups {got}, not the original {want}")
        with torch.no_grad():
            conv.weight.copy_(weight)
            if self.norm is not None:
                bn = _materialise(self.norm.template, weight)
                _norm_plus_bias(bn, bias)
                if conv.bias is not None:
                    conv.bias.zero_()
                become(self.norm, bn.train(self.norm.training))
            elif conv.bias is not None:
                conv.bias.copy_(bias)
            elif self.bias_norm is not None:
                # a new tensor, not sub_: a fold that fails later must leave the network as it was
                # (unchanged_on_error restores the buffer table, not tensor values)
                self.bias_norm.running_mean = self.bias_norm.running_mean - bias.to(self.bias_norm.running_mean)
            else:  # the original convolution had no bias and no BatchNorm takes its output (replace warned)
                conv.bias = nn.Parameter(bias.clone())
        if self.norm is not None:
            self.norm.requires_grad_(trainable)
        become(self, conv.train(self.training).requires_grad_(trainable))

    def extra_repr(self) -> str:
        return f"folds to {self.template}" + (" + absorbed norm" if self.norm is not None else "")


def _folded_conv(block: nn.Module) -> nn.Conv2d:
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    leaves = [m for m in block.modules() if not list(m.children()) and not isinstance(m, (nn.Conv2d, nn.Identity))]
    if len(convs) != 1 or leaves:
        raise RuntimeError(f"{type(block).__name__} did not fold into one convolution (it has {len(convs)} "
                           f"convolutions and {', '.join(type(m).__name__ for m in leaves) or 'nothing'} else)")
    return convs[0]


def _norm_plus_bias(bn: nn.Module, bias: torch.Tensor) -> None:
    """Make an eval-mode BatchNorm compute ``x + bias``: unit scale (running variance ``1 - eps``), shift ``bias``."""
    bn.running_var.fill_(1.0 - bn.eps)
    if bn.affine:
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias)
        bn.running_mean.zero_()
    else:
        bn.running_mean.copy_(-bias)
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.zero_()


def _following_norm(model: nn.Module, name: str, conv: nn.Conv2d) -> tuple[str, nn.Module] | None:
    """The BatchNorm (or a subclass of one, such as timm's ``BatchNormAct2d``) registered right after ``conv`` in
    its parent, when it normalises ``conv.out_channels`` with running statistics (the candidate; the probe confirms
    that it takes exactly the convolution's output)."""
    parent, key = parent_and_key(model, name)
    keys = list(parent._modules)
    i = keys.index(key)
    if i + 1 >= len(keys):
        return None
    nxt = parent._modules[keys[i + 1]]
    if isinstance(nxt, nn.modules.batchnorm._BatchNorm) and nxt.num_features == conv.out_channels \
            and nxt.track_running_stats:
        prefix = name.rpartition(".")[0]
        return (f"{prefix}.{keys[i + 1]}" if prefix else keys[i + 1]), nxt
    return None


# ------------------------------------------------------------------------------------------------------ replace


def replace(model: nn.Module, /, target: Selector, block: Any, example_input: Any = None, *,
            absorb_norm: bool | None = None, **block_kwargs: Any) -> SurgeryReport:
    """Swap every module of ``model`` that ``target`` matches for ``block`` built with that module's geometry.

    Args:
        model: any ``nn.Module``; edited in place.
        target: a glob over qualified module names, a module class (e.g. ``nn.Conv2d``) or a callable ``(name,
            module) -> bool``.  When matches nest, only the outermost is replaced.
        block: a registry name, a module class or a factory.  It is built as ``block(in_channels, out_channels=,
            kernel_size=, stride=, padding=, dilation=, groups=, bias=, padding_mode=, **block_kwargs)``, passing
            the geometry it has arguments for (of an ``nn.Conv2d``; of any other module its channels in and out and
            stride, from the probe).  A geometry it cannot take (a stride, dilation, groups or padding it has no
            argument for, a 1x1 kernel for ACNet/DBB/RepVGG, ...) raises.  A block with an ``act_layer`` gets
            ``act_layer=None`` unless given: it stands in for a linear unit.
        example_input: the probe input (default ``(1, C, 224, 224)``).
        absorb_norm: replace a convolution together with the BatchNorm right after it (default: when the block
            normalises its own output, see the module docstring).
        block_kwargs: further constructor arguments of the block.

    Returns:
        a :class:`SurgeryReport` with the replaced modules' names and the parameters added (negative: removed).

    Raises:
        SurgeryError (a ``ValueError``) with the module, the block and what was expected; the model is then left
        exactly as it was.
    """
    check_module(model, "replace", "the model as an nn.Module (built, e.g. by vb.create_model)")
    spec = resolve_block(block)
    matches = select_modules(model, target, "target")
    outer: list[tuple[str, nn.Module]] = []
    for name, module in matches:
        if not any(name.startswith(o + ".") for o, _ in outer):
            outer.append((name, module))
    for name, module in outer:
        changed = [f"{name}.{n}".rstrip(".") + f" is {how}" for n, m in module.named_modules() for how, yes in (
            ("pruned (torch.nn.utils.prune)", bool(pruning_methods(m))),
            ("parametrized (torch.nn.utils.parametrize)", parametrize.is_parametrized(m))) if yes]
        if changed:
            raise SurgeryError(f"replace: {changed[0]}: the new block would copy a reparametrised layer it cannot "
                               "fold back; make it permanent first (prune.remove / parametrize.remove_parametrizations)"
                               " (nothing was changed)")
        hooked = [f"{name}.{n}".rstrip(".") for n, m in module.named_modules()
                  if m._forward_hooks or m._forward_pre_hooks]
        if hooked:
            warnings.warn(f"replace: the forward hooks on {', '.join(hooked[:5])} go with the replaced module (the new "
                          "block does not run them); register them on the new block if you need them", stacklevel=2)
    absorb = _normalises(spec, block_kwargs) if absorb_norm is None else bool(absorb_norm)
    cls = spec.factory.func if isinstance(spec.factory, functools.partial) else spec.factory
    foldable = isinstance(cls, type) and is_reparameterizable(cls)
    followers = {}  # conv name -> (name, BatchNorm) registered right after it (the probe confirms it takes its output)
    for name, module in outer:
        if isinstance(module, nn.Conv2d) and (absorb or foldable):
            found = _following_norm(model, name, module)
            if found is not None:
                followers[name] = found
    if example_input is None:
        example_input = default_input(model)
    watch = dict(outer)
    watch.update({bn_name: bn for bn_name, bn in followers.values()})
    label = f"replace with {spec.name}"
    probe = first_probe(model, example_input, watch, watch, label)
    edits, names, per_module, units, biased = [], [], {}, {}, []
    for name, module in outer:
        if probe.calls.get(name, 0) == 0:
            raise SurgeryError(f"{label}: module {name!r} did not run in the probe forward; choose modules the forward "
                               "uses (or pass the right example_input=)")
        out = probe.kept_out[name]
        if not isinstance(out, torch.Tensor) or out.ndim != 4 or probe.in_shape[name] is None:
            raise SurgeryError(f"{label}: {name!r} ({type(module).__name__}) does not map a (B, C, H, W) tensor to "
                               "one; replace swaps feature-map modules")
        if isinstance(module, nn.Conv2d):
            geom = conv_geometry_of(module)
        else:
            cin, (cout, hout) = probe.in_shape[name][1], (out.shape[1], out.shape[2])
            hin = probe.in_shape[name][2]
            geom = {"in_channels": cin, "out_channels": cout}
            if hin != hout:
                geom["stride"] = hin // hout if hout and hin % hout == 0 else _one(getattr(module, "stride", 1))
        where = f"{name!r} ({module})" if isinstance(module, nn.Conv2d) else f"{name!r} ({type(module).__name__})"
        args, kwargs = _block_call(spec, geom, block_kwargs, where)
        new = spec.build(*args, where=where, **kwargs)
        new = place_like(new, out, module.training)
        follower = followers.get(name)
        if follower is not None and probe.kept_in.get(follower[0]) is not out:
            follower = None  # registered after the convolution, but not what normalises its output
        pair = follower if absorb and follower is not None and is_plain_batch_norm(follower[1]) else None
        if absorb_norm and pair is None and isinstance(module, nn.Conv2d):
            why = "" if follower is None else (f" ({follower[0]!r} is a {type(follower[1]).__name__}, which does more "
                                               "than normalise)")
            raise SurgeryError(f"{label}: absorb_norm=True, but no BatchNorm takes the output of {name!r} directly"
                               + why)
        bias_norm = follower[1] if follower is not None and pair is None else None
        if foldable and isinstance(module, nn.Conv2d) and module.bias is None and pair is None and bias_norm is None:
            biased.append(name)
        parent, key = parent_and_key(model, name)
        norm_slot = None
        if pair is not None:
            bn_parent, bn_key = parent_and_key(model, pair[0])
            norm_slot = AbsorbedNorm(pair[1]).train(pair[1].training) if foldable else nn.Identity()
            edits.append(Edit(bn_parent, bn_key, norm_slot))
        unit = RepSlot(new, module, norm_slot, bias_norm).train(module.training) \
            if foldable and isinstance(module, nn.Conv2d) else new
        edits.append(Edit(parent, key, mark_inserted(unit)))
        names.append(name)
        units[name] = (unit, tuple(out.shape))
        per_module[name] = sum(p.numel() for p in unit.parameters())
    before = count_params(model)

    def mismatch(n: str, shape: tuple, got: tuple | None) -> str:
        return f"{label}: {spec.name!r} at {n!r} gives {got}, the module it replaces gave {shape}"

    def check() -> None:
        after = verify_forward(model, example_input, {n: u for n, (u, _) in units.items()},
                               {n: shape for n, (_, shape) in units.items()}, mismatch, label)
        if after.output != probe.output:
            raise SurgeryError(f"{label}: the model's output changed from {probe.output} to {after.output}")

    apply_edits(edits, check)
    if biased:
        shown = ", ".join(map(repr, biased[:3])) + (" ..." if len(biased) > 3 else "")
        warnings.warn(f"{label}: {len(biased)} convolution(s) without a bias and without a BatchNorm after them "
                      f"({shown}): reparameterize folds each back into a convolution with a bias, which the original "
                      "has not (a strict load into the original class reports those keys)", stacklevel=2)
    report = SurgeryReport(names, "replace", spec.name, before, count_params(model), per_module)
    logger.info("%s", report.summary())
    return report
