"""The inference form of a whole network: :func:`fuse` folds every re-parameterizable block
(:func:`visionblocks.reparameterize`) and then every convolution followed by a BatchNorm into one convolution
with a bias (the conv-BN fold of Ioffe & Szegedy's BatchNorm at inference, arXiv 1502.03167; the arithmetic is
:func:`visionblocks.layers.fuse_conv_bn`), so deployed inference runs fewer kernels.

A convolution and the BatchNorm that follows it are folded where the network says so by its structure: the
``conv``/``bn`` pair of a :class:`~visionblocks.layers.ConvNormAct` (a unit whose norm its parent applies elsewhere
sets ``fusable = False``), and consecutive ``nn.Conv2d`` -> ``nn.BatchNorm2d`` children of an ``nn.Sequential``.
Other frameworks' conv-norm units (ultralytics' ``Conv``, timm's ``ConvNormAct``) are left to their own fuse: from
attribute names alone, which forward runs ``bn(conv(x))`` cannot be told.  A BatchNorm is folded only when it does
nothing but normalise (``layers.is_plain_batch_norm``).  The fused model is for evaluation: its BatchNorms are gone
(``nn.Identity``), so it cannot be trained further as the same network.

On the CPU, :func:`fuse` also stores the convolution weights channels-last (``torch.channels_last``, oneDNN's
native layout): every convolution then writes channels-last maps and no layer reorders its weights or its input
on each call, so the fused network runs in 0.64-0.80 of the time of its NCHW form (eval, batch 8, 192 x 192, two
threads: ResNet-18/50, MobileNetV2, EfficientNet-B0; ``benchmarks/fuse_latency.py``, docs/benchmarks_timm.md).
Inputs stay as they are (NCHW works; the first convolution takes it); outputs are the same values, and (B, C, H, W)
maps come out channels-last-strided (``.contiguous()`` restores NCHW strides where a consumer needs ``.view``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.parameter import is_lazy
from torch.nn.utils import parametrize

from .layers import ConvNormAct, conv_weights_channels_last, fuse_conv_bn, is_plain_batch_norm
from .layers.validate import check_module
from .reparam import check_foldable_modes, fold_tree, folds_checked, unchanged_on_error

__all__ = ["fuse", "to_channels_last"]


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    # a parametrized convolution (parametrize swaps its class) folds with its parametrized weight, as a pruned one
    # with its current weight_orig * mask: the fused layer is a plain convolution
    return (parametrize.type_before_parametrizations(conv) is nn.Conv2d and is_plain_batch_norm(bn)
            and bn.track_running_stats and bn.running_mean is not None and bn.num_features == conv.out_channels)


_ONEDNN_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _channels_last_pays(model: nn.Module) -> bool:
    """fuse's default: every convolution weight on the CPU in a type oneDNN runs (float64 convolutions take
    ATen's own kernels, for which channels-last is no faster), and no module declares ``prefers_nchw`` (a block
    measured slower on channels-last maps declares it; none does at present: ResNeSt's split attention did, 1.26x,
    until it got a channels-last path)."""
    ws = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d) and not is_lazy(m.weight)]
    return (bool(ws) and all(w.device.type == "cpu" and w.dtype in _ONEDNN_DTYPES for w in ws)
            and not any(getattr(m, "prefers_nchw", False) for m in model.modules()))


def fuse(model: nn.Module, channels_last: bool | None = None) -> nn.Module:
    """Fold ``model`` (in eval mode) into its inference form, in place; return it.

    First :func:`~visionblocks.reparameterize` (multi-branch blocks become one convolution), then every
    conv -> BatchNorm pair becomes one convolution with a bias.  Eval-mode outputs are unchanged (float rounding:
    1e-5 relative in float32).  ``channels_last``: store every ``nn.Conv2d`` weight in ``torch.channels_last``
    layout (see the module docstring); ``None`` (default) does so when the model is on the CPU in float32, bfloat16
    or float16, where oneDNN runs channels-last convolutions faster, and not in float64, on other devices, or when a
    module declares ``prefers_nchw = True`` (a block measured slower on channels-last maps); ``True`` chooses it
    there too.  The state dict then holds channels-last-strided weights: ``torch.save`` keeps them as they are;
    ``safetensors`` wants ``{k: v.contiguous() for k, v in sd.items()}``.  Raises ``RuntimeError`` in training mode
    (BatchNorm statistics are fixed only in eval mode) and ``TypeError`` for a non-module or a non-bool
    ``channels_last``; on error the model is left as it was.
    """
    check_module(model, "fuse")
    if channels_last is not None and not isinstance(channels_last, bool):
        raise TypeError(f"fuse: channels_last must be True, False or None (on the CPU), "
                        f"got {type(channels_last).__name__}")
    if model.training:
        raise RuntimeError("fuse folds BatchNorm running statistics, which are used only in eval mode; "
                           "call model.eval() first")
    check_foldable_modes(model, "fuse")
    for name, m in model.named_modules():  # a BatchNorm left in training mode normalises with batch statistics
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise RuntimeError(f"fuse: {name} ({type(m).__name__}) is in training mode, so it normalises with batch "
                               "statistics, not the running statistics a fold uses; call model.eval() first "
                               "(nothing was folded)")
    with unchanged_on_error(model), folds_checked(model, "fuse"):
        fold_tree(model)  # reparameterize's folds (pruned layers refreshed there: the folds below read them too)
        for module in list(model.modules()):
            if isinstance(module, ConvNormAct) and getattr(module, "fusable", True) and _foldable(module.conv,
                                                                                                  module.bn):
                module.conv = fuse_conv_bn(module.conv, module.bn)
                module.bn = nn.Identity()
            elif type(module) is nn.Sequential:
                children = list(module._modules.items())
                for (name, conv), (bn_name, bn) in zip(children, children[1:]):
                    if _foldable(conv, bn):
                        module._modules[name] = fuse_conv_bn(conv, bn)
                        module._modules[bn_name] = nn.Identity()
    if _channels_last_pays(model) if channels_last is None else channels_last:
        to_channels_last(model)
    return model


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store every ``nn.Conv2d`` weight of ``model`` in ``torch.channels_last`` layout, in place (values, shapes
    and parameter identity unchanged); return it.  Unlike ``model.to(memory_format=torch.channels_last)`` it
    touches only 2-D convolution weights: no other 4-D parameter or buffer (position embeddings, tables) changes
    its strides, and models with 5-D parameters (dynamic convolutions' kernel banks) are fine."""
    check_module(model, "to_channels_last")
    return conv_weights_channels_last(model)
