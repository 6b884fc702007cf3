"""The inference form of a whole network: :func:`fuse` folds every re-parameterizable block
(:func:`visionblocks.reparameterize`) and then every convolution followed by a BatchNorm into one convolution
with a bias (the conv-BN fold of Ioffe & Szegedy's BatchNorm at inference, arXiv 1502.03167; the arithmetic is
:func:`visionblocks.layers.fuse_conv_bn`), so deployed inference runs fewer kernels.

A convolution and the BatchNorm that follows it are folded where the network says so by its structure: the
``conv``/``bn`` pair of a :class:`~visionblocks.layers.ConvNormAct` (or of any module with those two attributes
whose forward runs ``bn(conv(x))``, as ConvNormAct does; a unit whose norm its parent applies elsewhere sets
``fusable = False``), and consecutive ``nn.Conv2d`` -> ``nn.BatchNorm2d``
children of an ``nn.Sequential``.  The fused model is for evaluation: its BatchNorms are gone (``nn.Identity``), so
it cannot be trained further as the same network.
"""
from __future__ import annotations

import torch.nn as nn

from .layers import ConvNormAct, fuse_conv_bn
from .reparam import reparameterize

__all__ = ["fuse"]


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            and bn.running_mean is not None and bn.num_features == conv.out_channels)


def fuse(model: nn.Module) -> nn.Module:
    """Fold ``model`` (in eval mode) into its inference form, in place; return it.

    First :func:`~visionblocks.reparameterize` (multi-branch blocks become one convolution), then every
    conv -> BatchNorm pair becomes one convolution with a bias.  Eval-mode outputs are unchanged (float rounding:
    1e-5 relative in float32).  Raises ``RuntimeError`` in training mode (BatchNorm statistics are fixed only in
    eval mode) and ``TypeError`` for a non-module; on error the model is left as it was.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"fuse expects an nn.Module, got {type(model).__name__}")
    if model.training:
        raise RuntimeError("fuse folds BatchNorm running statistics, which are used only in eval mode; "
                           "call model.eval() first")
    reparameterize(model)
    for module in list(model.modules()):
        if isinstance(module, ConvNormAct) and getattr(module, "fusable", True) and _foldable(module.conv, module.bn):
            module.conv = fuse_conv_bn(module.conv, module.bn)
            module.bn = nn.Identity()
        elif type(module) is nn.Sequential:
            children = list(module._modules.items())
            for (name, conv), (bn_name, bn) in zip(children, children[1:]):
                if _foldable(conv, bn):
                    module._modules[name] = fuse_conv_bn(conv, bn)
                    module._modules[bn_name] = nn.Identity()
    return model
