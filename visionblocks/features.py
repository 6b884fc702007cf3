"""Multi-scale feature extraction: the backbone API that detection and segmentation code expects (names and
semantics as in timm, so code written for timm works unchanged).

- :class:`FeatureInfo`: for each feature a model can return, its channels (``num_chs``), its ``reduction``
  (input size / feature size) and the ``module`` it is taken from; ``.channels()``, ``.reduction()``.
- :func:`feature_take_indices`: the ``indices`` rule of ``forward_intermediates`` (``None``: all; an int
  ``n``: the last ``n``; a sequence: those, negative values counting from the end).
- :class:`FeatureListNet`: what ``create_model(name, features_only=True, out_indices=...)`` returns, a module
  whose forward gives the list of the chosen feature maps (B, C_i, H / r_i, W / r_i).
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

__all__ = ["FeatureInfo", "FeaturePlan", "FeatureListNet", "BackboneMixin", "feature_take_indices", "tokens_to_nchw", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = ("NCHW", "NHWC")


class FeatureInfo:
    """The features a model offers, in order: a list of ``{"num_chs", "reduction", "module", "index"}``."""

    def __init__(self, entries: Sequence[dict[str, Any]], out_indices: Sequence[int] | None = None):
        self.info = [dict(e, index=i) for i, e in enumerate(entries)]
        for e in self.info:
            for key in ("num_chs", "reduction", "module"):
                if key not in e:
                    raise ValueError(f"feature_info entry {e} lacks {key!r}")
        self.out_indices = tuple(range(len(self.info)) if out_indices is None else out_indices)

    def from_other(self, out_indices: Sequence[int], prefix: str = "") -> "FeatureInfo":
        """The same features at ``out_indices``; ``prefix`` before every module name (the path of the model inside
        a wrapper, so that the wrapper's ``get_submodule`` finds them)."""
        return FeatureInfo([dict({k: v for k, v in e.items() if k != "index"}, module=prefix + e["module"])
                            for e in self.info], out_indices)

    def _get(self, key: str, idx: int | Sequence[int] | None):
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, Sequence):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def channels(self, idx: int | Sequence[int] | None = None):
        """Channels of the selected features (all of ``out_indices`` by default)."""
        return self._get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None):
        """Reductions (stride relative to the input) of the selected features."""
        return self._get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None):
        return self._get("module", idx)

    def get_dicts(self, keys: Sequence[str] | None = None, idx: Sequence[int] | None = None) -> list[dict]:
        sel = self.out_indices if idx is None else idx
        return [{k: self.info[i][k] for k in (keys or self.info[i])} for i in sel]

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self):
        return iter(self.info)

    def __repr__(self) -> str:
        rows = ", ".join(f"({e['index']}: {e['num_chs']} ch, /{e['reduction']}, {e['module']})" for e in self.info)
        return f"FeatureInfo([{rows}], out_indices={self.out_indices})"


class FeaturePlan:
    """Builds ``feature_info`` and ``feature_plan`` (see :class:`BackboneMixin`) for a network laid out as one flat
    sequence of steps (a stem, then ``blocks.0``, ``blocks.1``...): :meth:`add` each step in order and call
    :meth:`end_feature` after the last step at each resolution.

    >>> plan = FeaturePlan(["stem"]); plan.add("blocks.0"); plan.end_feature(num_chs=16, reduction=2)
    >>> plan.feature_plan, plan.feature_info().channels()
    ([['stem', 'blocks.0']], [16])
    """

    def __init__(self, first_steps: Sequence[str] = ()):
        self._steps, self._features = list(first_steps), []
        self.feature_plan: list[list[str]] = []

    def add(self, step: str) -> None:
        """The next step (a module path or a method name of the model)."""
        self._steps.append(step)

    def end_feature(self, num_chs: int, reduction: int) -> None:
        """The steps added since the previous feature lead to a feature of ``num_chs`` channels at ``reduction``."""
        if not self._steps:
            raise ValueError("FeaturePlan.end_feature: no step was added since the previous feature")
        self._features.append(dict(num_chs=num_chs, reduction=reduction, module=self._steps[-1]))
        self.feature_plan.append(self._steps)
        self._steps = []

    def feature_info(self) -> FeatureInfo:
        return FeatureInfo(self._features)


def feature_take_indices(num_features: int, indices: int | Sequence[int] | None = None,
                         owner: str = "model") -> tuple[list[int], int]:
    """Resolve ``indices`` against ``num_features`` features: ``(sorted indices to take, the largest one)``.

    ``None`` takes all; an int ``n`` the last ``n``; a sequence those indices (negative ones count from the end).
    Anything outside ``0 .. num_features - 1`` is a ``ValueError`` naming what the model offers.
    """
    if indices is None:
        take = list(range(num_features))
    elif isinstance(indices, bool) or not isinstance(indices, (int, Sequence)) or isinstance(indices, str):
        raise TypeError(f"indices must be None, an int or a sequence of ints, got {indices!r}")
    elif isinstance(indices, int):
        if not 0 < indices <= num_features:
            raise ValueError(f"{owner} offers {num_features} features (indices 0..{num_features - 1}); "
                             f"cannot take the last {indices}")
        take = list(range(num_features - indices, num_features))
    else:
        take = []
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"feature indices must be ints, got {i!r} in {indices!r}")
            j = i + num_features if i < 0 else i
            if not 0 <= j < num_features:
                raise ValueError(f"{owner} offers {num_features} features (indices 0..{num_features - 1}, or "
                                 f"-{num_features}..-1); got index {i} in {tuple(indices)}")
            take.append(j)
        if not take:
            raise ValueError(f"indices must not be empty ({owner} offers {num_features} features)")
        if len(set(take)) != len(take):
            raise ValueError(f"feature indices must be distinct, got {tuple(indices)}")
    return sorted(take), max(take)


def tokens_to_nchw(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H W, C) tokens -> (B, C, H, W) map."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], height, width)


def check_output_fmt(output_fmt: str) -> None:
    if output_fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output_fmt must be one of {OUTPUT_FORMATS}, got {output_fmt!r}")


def _running_stats(steps: Sequence[Any]) -> list[torch.Tensor]:
    """The running statistics (mean, variance, batch count) of every BatchNorm a stage's ``steps`` may run: a
    module step's own; for a method step (ParNet's streams), every one of the model it belongs to."""
    found, seen = [], set()
    for step in steps:
        owner = step if isinstance(step, nn.Module) else getattr(step, "__self__", None)
        for m in owner.modules() if isinstance(owner, nn.Module) else ():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in seen:
                seen.add(id(m))
                found += [b for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]
    return found


def _stats_as_in_forward(buffers: list[torch.Tensor]) -> tuple[contextlib.AbstractContextManager, ...]:
    """``checkpoint``'s ``context_fn`` for a stage with BatchNorms: the forward keeps the running statistics it
    started from; the recomputation in backward starts from them (so what reads them while training, as DBB's pad
    value does, sees what the forward saw) and leaves them as it found them (one update per step, as without
    checkpointing: the recompute's BatchNorms would update them a second time)."""
    started: list[torch.Tensor] = []

    @contextlib.contextmanager
    def forward():
        started[:] = [b.clone() for b in buffers]
        yield

    @contextlib.contextmanager
    def recompute():
        now = [b.clone() for b in buffers]
        with torch.no_grad():
            for b, s in zip(buffers, started):
                b.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for b, n in zip(buffers, now):
                    b.copy_(n)

    return forward(), recompute()


class BackboneMixin:
    """The backbone API of every visionblocks model, from one declaration per model.

    A model sets, in its constructor, ``self.feature_info = FeatureInfo([...])`` and ``self.feature_plan``: for
    each feature, the steps that lead from the previous feature (or the input) to it — module paths (``"stem.0"``,
    ``"stages.1"``) or names of the model's own methods (``"to_tokens"``).  The feature's ``module`` in
    ``feature_info`` is the last module path of its steps.  A model whose features are not (B, C, H, W) maps
    between steps (tokens) overrides :meth:`feature_to_nchw`; one with a final norm or convolution after the
    last stage overrides :meth:`forward_final`.  Then ``forward_features``, ``forward_intermediates``,
    ``prune_intermediate_layers`` and gradient checkpointing all follow from the plan.
    """

    feature_info: FeatureInfo
    feature_plan: list[list[str]]
    grad_checkpointing: bool = False
    #: False where ``forward_final`` is no norm (a 1x1 convolution that widens the map for the head): the last
    #: feature never passes through it, so pruning the head prunes it too (else its parameters would get no
    #: gradient in a feature extractor, and DistributedDataParallel would stop on them)
    final_is_norm: bool = True
    _num_stages_kept: int | None = None
    #: True where the final norm and the classifier fit every feature (isotropic networks): pruned to an earlier
    #: feature with ``prune_head=False``, the network keeps classifying (timm's Mixer, ResMLP, gMLP)
    head_fits_every_feature: bool = False
    #: what each of the model's own methods among the steps runs besides other steps (module paths, or parameters:
    #: a position embedding), removed with it by ``prune_intermediate_layers`` (modules become ``nn.Identity``,
    #: parameters ``None``)
    step_modules: dict[str, tuple[str, ...]] = {}

    # --- hooks a model may override -------------------------------------------------------------------------
    def feature_to_nchw(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Feature ``index`` as a (B, C, H, W) map (default: it already is one)."""
        return x

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """What follows the last stage in ``forward_features`` (a final norm, a head convolution...)."""
        return x

    def final_norm_to_map(self, x: torch.Tensor) -> torch.Tensor:
        """``forward_final`` applied to a feature for ``forward_intermediates(norm=True)``."""
        return self.forward_final(x)

    def final_norm_applies(self, index: int) -> bool:
        """Whether ``forward_intermediates(norm=True)`` applies the final norm to feature ``index``: the last one
        (default); models whose final norm fits more of their features (isotropic token networks, as in timm)
        override.  A network pruned to a feature keeps its final norm only where it applies there."""
        return index == len(self.feature_info) - 1

    # --- the generic machinery ------------------------------------------------------------------------------
    def _step(self, step: str):
        fn = getattr(type(self), step, None)
        if callable(fn) and not isinstance(fn, nn.Module):
            return getattr(self, step)
        return self.get_submodule(step)

    def _run_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        steps = [self._step(s) for s in self.feature_plan[index]]
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            def run(t, _steps=steps):
                for f in _steps:
                    t = f(t)
                return t
            buffers = _running_stats(steps)
            if not buffers or torch.compiler.is_compiling():
                return checkpoint(run, x, use_reentrant=False)
            return checkpoint(run, x, use_reentrant=False, context_fn=lambda: _stats_as_in_forward(buffers))
        for f in steps:
            x = f(x)
        return x

    def _num_stages(self) -> int:
        return len(self.feature_plan) if self._num_stages_kept is None else self._num_stages_kept

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        for i in range(self._num_stages()):
            x = self._run_stage(i, x)
        return self.forward_final(x)

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False):
        """Features at ``indices`` (see :func:`feature_take_indices`), as (B, C, H, W) maps (``"NHWC"``: (B, H, W,
        C)).  Returns the list when ``intermediates_only``, else ``(forward_features(x), list)``.  ``norm`` applies
        the model's final norm to the features it fits (:meth:`final_norm_applies`: the last one; every feature of
        the isotropic token networks, as timm); ``stop_early`` skips the stages after the last
        index (the final features are then not computed: with ``intermediates_only=True`` only, a ValueError
        otherwise, unless the last index is the last feature)."""
        self.check_input(x)
        check_output_fmt(output_fmt)
        take, max_index = feature_take_indices(len(self.feature_info), indices, type(self).__name__)
        n = self._num_stages()
        if max_index >= n:
            raise ValueError(f"{type(self).__name__} was pruned to features 0..{n - 1}; index {max_index} is gone")
        last = max_index if (stop_early or intermediates_only) else n - 1
        if not intermediates_only and last < n - 1:
            raise ValueError(f"{type(self).__name__}.forward_intermediates: stop_early=True stops after feature "
                             f"{last}, so the final features (the first value returned) are not computed; pass "
                             "intermediates_only=True with it (or stop_early=False)")
        feats = []
        for i in range(last + 1):
            x = self._run_stage(i, x)
            if i in take:
                y = self.final_norm_to_map(x) if norm and self.final_norm_applies(i) else x
                y = self.feature_to_nchw(i, y)
                feats.append(y.permute(0, 2, 3, 1) if output_fmt == "NHWC" else y)
        if intermediates_only:
            return feats
        return self.forward_final(x), feats

    def prune_intermediate_layers(self, indices: int | Sequence[int] | None = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last of ``indices``; return the indices kept.  In place, as timm's:

        - ``prune_head`` (default), or a network cut short (its head was sized for the last feature; unless
          ``head_fits_every_feature``, as in the isotropic token networks): the classifier goes and so does the
          pooling (``reset_classifier(0, "")``): ``forward`` returns what
          ``forward_features`` returns, unpooled.
        - The final norm goes with ``prune_norm``, and where it does not fit the last kept feature
          (:meth:`final_norm_applies`); a final convolution (``final_is_norm = False``) goes with the head.
        - ``num_features`` becomes the channels ``forward_features`` now ends with (a later ``reset_classifier(n)``
          builds a classifier of that width).
        """
        take, max_index = feature_take_indices(len(self.feature_info), indices, type(self).__name__)
        keep = {s for plan in self.feature_plan[:max_index + 1] for s in plan}
        for plan in self.feature_plan[max_index + 1:]:
            for step in plan:
                if callable(getattr(type(self), step, None)):
                    for path in self.step_modules.get(step, ()):
                        _set_submodule(self, path, None if _is_parameter(self, path) else nn.Identity())
                elif step not in keep:
                    _set_submodule(self, step, nn.Identity())
        self._num_stages_kept = max_index + 1
        cut_short = max_index < len(self.feature_info) - 1
        prune_head = prune_head or (cut_short and not self.head_fits_every_feature)
        prune_final = prune_norm or (prune_head and not self.final_is_norm) or \
            (cut_short and not self.final_norm_applies(max_index))
        if prune_final:
            self.prune_final()
        if prune_final or cut_short:
            self.num_features = self.feature_info[max_index]["num_chs"]
        if prune_head:
            self.prune_head()
            self.reset_classifier(0, "")
        return take

    def prune_final(self) -> None:
        """Remove what ``forward_final`` applies (override where it holds modules)."""

    def prune_head(self) -> None:
        """Remove what serves only the classifier besides the classifier itself (a head convolution, a class
        token); override where a model has such parts.  Called by :meth:`prune_intermediate_layers`."""

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage in the backward pass instead of storing its activations (training only)."""
        self.grad_checkpointing = bool(enable)

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """The layer groups of timm's layer-wise learning-rate decay (``timm.optim.create_optimizer_v2(model,
        layer_decay=...)``), in forward order, from ``feature_plan``: ``"stem"`` is the first module run, with the
        modules of the first feature under the same attribute (``stem.0``, ``stem.1``), and the model's own
        parameters (position embeddings, class tokens); ``"blocks"`` one group per module the feature
        steps run after it -- each block of a stage that is a plain ``Sequential``/``ModuleList`` -- or,
        ``coarse``, one per feature.  Parameters in no group (a final norm, the classifier) come last, as in timm."""
        units = []  # (module path, feature index) in forward order
        for index, plan in enumerate(self.feature_plan):
            for step in plan:
                if callable(getattr(type(self), step, None)):
                    continue  # a method of the model's: its modules are steps or the model's own parameters
                module = self.get_submodule(step)
                if not any(True for _ in module.parameters()):
                    continue
                if not coarse and units and type(module) in (nn.Sequential, nn.ModuleList) and len(module) > 1:
                    units += [(f"{step}.{name}", index) for name, child in module.named_children()
                              if any(True for _ in child.parameters())]
                else:
                    units.append((step, index))
        if not units:
            return {"stem": r"^[^.]+$", "blocks": []}
        root = units[0][0].split(".")[0]   # the stem: the first module run, with its siblings in the first feature
        stem = [path for path, index in units if index == 0 and path.split(".")[0] == root]
        rest = [(path, index) for path, index in units if path not in stem]
        blocks = [(rf"^{re.escape(path)}\.", (index if coarse else i,)) for i, (path, index) in enumerate(rest)]
        return {"stem": [(r"^[^.]+$", None)] + [(rf"^{re.escape(path)}\.", None) for path in stem], "blocks": blocks}


def _is_parameter(root: nn.Module, path: str) -> bool:
    parent, _, name = path.rpartition(".")
    return name in (root.get_submodule(parent) if parent else root)._parameters


def _set_submodule(root: nn.Module, path: str, module: nn.Module | None) -> None:
    parent, _, name = path.rpartition(".")
    owner = root.get_submodule(parent) if parent else root
    if isinstance(owner, (nn.Sequential, nn.ModuleList)) and name.isdigit():
        owner[int(name)] = module
    else:
        setattr(owner, name, module)


class FeatureListNet(nn.Module):
    """A model's feature extractor: ``forward(x)`` returns the list of feature maps at ``out_indices``.

    The wrapped model is pruned of the stages after the last index and of its head, so no work is spent on
    them; ``feature_info`` lists the kept features (``.channels()``, ``.reduction()``).
    """

    def __init__(self, model: nn.Module, out_indices: int | Sequence[int] | None = None, output_fmt: str = "NCHW",
                 norm: bool = False):
        super().__init__()
        if not hasattr(model, "forward_intermediates") or not hasattr(model, "feature_info"):
            raise TypeError(f"{type(model).__name__} has no forward_intermediates/feature_info: not a backbone")
        check_output_fmt(output_fmt)
        take, _ = feature_take_indices(len(model.feature_info), out_indices, type(model).__name__)
        model.prune_intermediate_layers(take, prune_norm=not norm, prune_head=True)
        self.model = model
        self.out_indices = tuple(take)
        self.output_fmt = output_fmt
        self.norm = norm
        # module names as this module's get_submodule finds them ("model.layer1"), as timm's feature extractors
        self.feature_info = model.feature_info.from_other(take, prefix="model.")

    @property
    def pretrained_cfg(self) -> dict:
        """The wrapped model's (its pre-processing still applies: ``resolve_data_config`` reads it)."""
        return self.model.pretrained_cfg

    @property
    def default_cfg(self) -> dict:
        """``pretrained_cfg`` (timm's older name)."""
        return self.pretrained_cfg

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """The wrapped model's gradient checkpointing (each stage recomputed in the backward pass)."""
        self.model.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, indices=list(self.out_indices), norm=self.norm,
                                                output_fmt=self.output_fmt, intermediates_only=True)
