"""What every model shares: the backbone and classifier API (:class:`ModelBase`), the classifier head, the data
configuration, and resolving an ``attn=`` argument."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
import torch.nn as nn

from visionblocks.features import BackboneMixin
from visionblocks.layers import LayerType, get_attn_layer, spatial_mean, to_names
from visionblocks.layers.validate import check_arg, check_input_dtype, check_int, conv_chain_min_size
from visionblocks.registry import model_info

__all__ = ["ClassifierHead", "ModelBase", "ChannelsLastModel", "check_attn_kwargs", "resolve_attn",
           "resolve_data_config"]


def check_attn_kwargs(attn: LayerType, attn_kwargs: Any, name: str = "attn", kwargs_name: str | None = None) -> None:
    """A model's attention options: ``attn_kwargs`` is ``None`` or a dict (``TypeError``), and a non-empty one
    comes with an attention (``ValueError``: without one it would be silently ignored).  ``name``/``kwargs_name``
    are the arguments' names in messages (default ``f"{name}_kwargs"``)."""
    kwargs_name = kwargs_name or f"{name}_kwargs"
    if attn_kwargs is None:
        return
    check_arg(kwargs_name, attn_kwargs, "dict")
    if attn is None and attn_kwargs:
        raise ValueError(f"{kwargs_name} given without {name}: {attn_kwargs!r} would be ignored (pass {name}=..., "
                         f"e.g. {name}='se', or drop {kwargs_name})")


def resolve_attn(attn: LayerType, attn_kwargs: dict | None = None,
                 name: str = "attn") -> Callable[[int], nn.Module] | None:
    """A model's ``attn=``/``attn_kwargs=`` as the factory ``channels -> nn.Module`` its blocks call (``None`` for
    no attention); ``attn`` is resolved by :func:`~visionblocks.layers.create_attn.get_attn_layer` (a registered
    ``nchw`` block name, a module class or factory taking ``channels``, or ``None``); ``attn_kwargs`` is checked by
    :func:`check_attn_kwargs` (``name``: the argument's name in messages, e.g. ``"stage_attn"``)."""
    check_attn_kwargs(attn, attn_kwargs, name)
    cls = get_attn_layer(attn)
    return None if cls is None else partial(cls, **(attn_kwargs or {}))


_POOLS = ("avg", "max", "")


class ClassifierHead(nn.Module):
    """Global pooling (``"avg"``, ``"max"``, or ``""``: none), optional dropout, then a linear classifier
    (identity when ``num_classes=0``).  (B, N, C) tokens are averaged over N with ``"avg"``."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        self.in_features = in_features
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.global_pool = resolve_pool(global_pool, num_classes)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    @property
    def num_classes(self) -> int:
        return self.fc.out_features if isinstance(self.fc, nn.Linear) else 0

    def reset(self, num_classes: int, global_pool: str | None = None, in_features: int | None = None,
              like: torch.Tensor | None = None) -> None:
        """A new classifier (initialised afresh) for ``num_classes`` (0: none) on ``in_features`` (default:
        unchanged), on the device and dtype of ``like`` (default: the current classifier's).  Without
        ``global_pool``, a head that pools nothing (``""``) pools by average again for a classifier."""
        self.global_pool = resolve_pool(global_pool, num_classes, self.global_pool)
        if in_features is not None:
            self.in_features = in_features
        ref = next(self.parameters(), None) if like is None else like
        factory = {} if ref is None else {"device": ref.device, "dtype": ref.dtype}
        self.fc = nn.Linear(self.in_features, num_classes, **factory) if num_classes > 0 else nn.Identity()

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == "" or x.ndim == 2:
            return x
        if x.ndim == 3:  # (B, N, C) tokens
            return x.mean(1) if self.global_pool == "avg" else x.amax(1)
        return spatial_mean(x) if self.global_pool == "avg" else x.amax((2, 3))

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pool(x))
        return x if pre_logits else self.fc(x)


def resolve_pool(global_pool: str | None, num_classes: int, current: str | None = None,
                 pools: tuple[str, ...] = _POOLS, what: str = "global_pool") -> str:
    """The pooling of a (re)built classifier head: ``global_pool``, one of ``pools`` (``""``: none, only without a
    classifier); ``None`` keeps ``current``, except that a head that pooled nothing pools by average again for a
    classifier (a network pruned to its features, given a classifier anew)."""
    if global_pool is None:
        global_pool = "avg" if current == "" and num_classes > 0 else current
    if global_pool not in pools:
        raise ValueError(f"{what} must be one of {pools}, got {global_pool!r}")
    if global_pool == "" and num_classes > 0:
        raise ValueError("global_pool='' (no pooling) needs num_classes=0: a classifier needs pooled features")
    return global_pool


class ModelBase(BackboneMixin, nn.Module):
    """What every visionblocks model offers, with timm's names so code written for timm works unchanged.

    ``forward = forward_head(forward_features(x))``; the backbone API of :class:`~visionblocks.features.
    BackboneMixin` (``feature_info``, ``forward_intermediates``, ``prune_intermediate_layers``,
    ``set_grad_checkpointing``); the classifier API (``num_features``, ``num_classes``, ``get_classifier``,
    ``reset_classifier``); ``pretrained_cfg`` (data configuration, first convolution, classifier) and
    ``no_weight_decay()``.  A model class names its first convolution and classifier modules in the class
    attribute ``classifier`` (default ``"head.fc"``); ``first_conv`` is found (the first ``nn.Conv2d``).
    """

    in_chans: int = 3
    num_features: int
    #: the classifier module (``get_classifier``), or a tuple of the classifiers a checkpoint's class count shapes,
    #: that one first (VOLO: ``("head", "aux_head")``, as timm's pretrained_cfg)
    classifier: str | tuple[str, ...] = "head.fc"
    #: the modules, in order, whose convolutions embed the input as patches (``("stem",)``): their geometry sets
    #: the smallest input the model takes (:meth:`min_input_size`); empty where any size >= 1 works
    input_stem: tuple[str, ...] = ()
    #: what ``forward_head`` reads (the output of ``forward_features``, or pooled features): rank -> (channel
    #: dim, layout)
    head_layouts: dict[int, tuple[int, str]] = {4: (1, "(B, C, H, W)"), 3: (-1, "(B, N, C)"), 2: (-1, "(B, C)")}

    @property
    def first_conv(self) -> str:
        """The module name of the first convolution (the one that reads the image): the first ``nn.Conv2d`` of
        the model (a model whose first layer is not one sets ``_first_conv``)."""
        name = self.__dict__.get("_first_conv")
        if name is None:
            name = next((n for n, m in self.named_modules() if isinstance(m, nn.Conv2d)), "")
        return name

    def min_input_size(self) -> tuple[int, int]:
        """The smallest (H, W) the model takes: what the convolutions of ``input_stem`` need to give one
        patch; (1, 1) for a model without an ``input_stem``."""
        return conv_chain_min_size(m for path in self.input_stem for m in self.get_submodule(path).modules())

    def check_input(self, x: Any) -> None:
        """The input of every entry point (``forward``, ``forward_features``, ``forward_intermediates`` and so
        ``features_only``): a (B, in_chans, H, W) tensor of at least :meth:`min_input_size`, floating and of the
        model's dtype (any under ``torch.autocast``; the dtype and size rules of the blocks: eager only)."""
        name = type(self).__name__
        if isinstance(x, torch.fx.Proxy):
            raise TypeError(
                f"{name}: torch.fx cannot trace a visionblocks model (its forward checks shapes and picks kernels by "
                "layout); for features use create_model(..., features_only=True) or forward_intermediates, for a "
                "graph torch.export.export, and inside a network you trace make it a leaf (torchvision's "
                f"create_feature_extractor(..., tracer_kwargs={{'leaf_modules': [{name}]}})); blocks are FX leaves")
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"{name} expects input of shape (B, {self.in_chans}, H, W), got {tuple(x.shape)}")
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return
        check_input_dtype(self, x, name)
        h, w = self.min_input_size()
        if x.shape[2] < h or x.shape[3] < w:
            convs = [m for path in self.input_stem for m in self.get_submodule(path).modules()
                     if isinstance(m, nn.Conv2d)]
            geometry = ", ".join(f"{c.kernel_size[0]}x{c.kernel_size[1]} stride {c.stride[0]}" for c in convs)
            raise ValueError(f"{name} needs an input of at least {h}x{w}: its patch embedding "
                             f"({' + '.join(self.input_stem)}: convolutions {geometry}) reads one patch; "
                             f"got input of shape {tuple(x.shape)}")

    def check_head_input(self, x: Any) -> None:
        """The input of ``forward_head``: features in one of ``head_layouts`` with ``num_features``
        channels, of the model's dtype (a ``ValueError``/``TypeError`` naming both otherwise)."""
        name = f"{type(self).__name__}.forward_head"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
        width = self.num_features
        layout = self.head_layouts.get(x.ndim)
        if layout is None or x.shape[layout[0]] != width:
            forms = " or ".join(d for _, d in self.head_layouts.values())
            raise ValueError(f"{name} expects features {forms} with C = {width} (num_features), got shape "
                             f"{tuple(x.shape)}")
        if not (torch.compiler.is_compiling() or torch.jit.is_tracing()):
            check_input_dtype(self, x, name)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The classifier on the features: ``self.head(x, pre_logits=pre_logits)`` (a :class:`ClassifierHead`
        pools (B, C, H, W) maps and (B, N, C) tokens itself)."""
        self.check_head_input(x)
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # --- classifier -----------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        fc = self.get_classifier()
        return fc.out_features if isinstance(fc, nn.Linear) else 0

    def get_classifier(self) -> nn.Module:
        """The final linear layer (``nn.Identity`` when the model has no classifier)."""
        return self.get_submodule(to_names(self.classifier)[0])

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier by a fresh one with ``num_classes`` outputs (``head_hidden_size`` wide, on the
        model's device and dtype); 0 removes it (``forward`` then returns the pooled pre-logits).  ``global_pool``:
        ``"avg"``, ``"max"`` or ``""`` (none: ``forward`` returns ``forward_features``' output, or a head
        convolution's where one follows the pooling, as GhostNet's; ``num_classes=0`` only)."""
        check_int("num_classes", num_classes, low=0)
        self.head.reset(num_classes, global_pool, in_features=self.head_hidden_size,
                        like=next(self.parameters(), None))

    def set_global_pool(self, global_pool: str) -> None:
        """The classifier's pooling: ``"avg"``, ``"max"`` or ``""`` (none: ``forward`` returns ``forward_features``'
        output; ``num_classes=0`` only); the classifier's weights are kept (``create_model(..., global_pool=)``)."""
        self.head.global_pool = resolve_pool(global_pool, self.num_classes, self.head.global_pool)

    @property
    def head_hidden_size(self) -> int:
        """The width of the pre-logits features (``forward_head(x, pre_logits=True)``), as timm's:
        ``num_features`` unless a head convolution follows the pooling (GhostNet)."""
        return self.num_features

    @property
    def default_cfg(self) -> dict[str, Any]:
        """``pretrained_cfg`` (timm's older name)."""
        return self.pretrained_cfg

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage in the backward pass instead of storing its activations (training only)."""
        super().set_grad_checkpointing(check_arg("enable", enable, "bool"))

    # --- configuration --------------------------------------------------------------------------------------
    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """The data configuration and provenance (see :meth:`visionblocks.ModelInfo.pretrained_cfg`), with this
        model's ``first_conv``, ``classifier`` and ``num_classes``."""
        cfg = dict(self.__dict__.get("_pretrained_cfg") or {})
        cfg.update(first_conv=self.first_conv, classifier=self.classifier, num_classes=self.num_classes)
        return cfg

    @pretrained_cfg.setter
    def pretrained_cfg(self, cfg: dict[str, Any]) -> None:
        self.__dict__["_pretrained_cfg"] = dict(cfg)

    def no_weight_decay(self) -> set[str]:
        """Parameters the training recipes of these papers exclude from weight decay: biases and norm weights
        (every parameter with fewer than 2 dimensions), position embeddings and relative-position tables."""
        keep = ("pos_embed", "rel_table", "relative_position", "cls_token")
        return {n for n, p in self.named_parameters() if p.ndim <= 1 or any(k in n for k in keep)}


class ConvHeadModel(ModelBase):
    """A model whose ``forward_features`` ends in a 1x1 convolution after its last stage (MobileNetV2,
    EfficientNet, MobileViT), stored under the attribute named by ``final_conv_attr``.  That convolution is no
    norm: ``forward_intermediates(norm=True)`` keeps the last stage's map, and pruning replaces the convolution."""

    final_conv_attr = "conv_head"
    final_is_norm = False

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """The 1x1 convolution to ``num_features`` channels."""
        return getattr(self, self.final_conv_attr)(x)

    def final_norm_to_map(self, x: torch.Tensor) -> torch.Tensor:
        return x  # a convolution, no norm: features keep their feature_info channels

    def prune_final(self) -> None:
        setattr(self, self.final_conv_attr, nn.Identity())


class ChannelsLastModel(ModelBase):
    """A model whose stages run on channels-last (B, H, W, C) maps and end in a LayerNorm ``self.norm`` (GFNet, ViP):
    its features are returned as (B, C, H, W), the head pools over H and W (``global_pool`` mean or max)."""

    head_layouts = {4: (-1, "(B, H, W, C)")}

    def feature_to_nchw(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """The final LayerNorm over the channels of the (B, H, W, C) map."""
        return self.norm(x)

    def prune_final(self) -> None:
        self.norm = nn.Identity()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pools the channels-last map (the head's ``global_pool``: mean or max over H, W) then classifies."""
        self.check_head_input(x)
        pool = self.head.global_pool
        x = x.mean((1, 2)) if pool == "avg" else x.amax((1, 2)) if pool == "max" else x
        return self.head(x, pre_logits=pre_logits)


def resolve_data_config(model: nn.Module | str, **overrides: Any) -> dict[str, Any]:
    """The pre-processing a model expects (``input_size``, ``interpolation``, ``mean``, ``std``, ``crop_pct``,
    ``crop_mode``), from a model's ``pretrained_cfg`` or a registered model name; ``overrides`` win."""
    if isinstance(model, str):
        cfg = model_info(model).pretrained_cfg()
    elif isinstance(getattr(model, "pretrained_cfg", None), dict):
        cfg = model.pretrained_cfg
    else:
        raise TypeError(f"resolve_data_config expects a visionblocks model or a model name, got {type(model).__name__}")
    keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
    out = {k: cfg[k] for k in keys if k in cfg}
    unknown = set(overrides) - set(keys)
    if unknown:
        raise ValueError(f"resolve_data_config: unknown keys {sorted(unknown)}; known: {keys}")
    out.update(overrides)
    return out
