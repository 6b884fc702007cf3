"""Inverted residual / MBConv (Sandler et al., MobileNetV2, CVPR 2018, arXiv 1801.04381; Tan & Le,
EfficientNet, ICML 2019, arXiv 1905.11946).

``y = x + project(attn(depthwise_kxk(expand_1x1(x))))``: a 1x1 expansion by ``expand_ratio`` (skipped when it
is 1), a depthwise kxk convolution carrying the stride, an optional attention on the expanded features
(EfficientNet's squeeze-and-excitation, a quarter of the block's *input* channels wide, or any ``nchw``
block), and a linear 1x1 projection (BN, no activation).  The identity shortcut is used when the stride is 1
and the channel count is unchanged.  Defaults are EfficientNet's MBConv6 (k3, SE 0.25, swish).
"""
from __future__ import annotations

import functools
import inspect
import warnings

import torch
import torch.nn as nn

from visionblocks.layers import (
    square_conv_geometry,
    ConvNormAct, DropPath, LayerType, SqueezeExcite, check_nchw, create_attn, get_attn_layer, reduced_channels,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block


__all__ = ["MBConv"]


def _se_ratio_to_attn_layer(init):
    """``se_ratio=r`` (deprecated) keeps working: EfficientNet's SE ``max(1, int(in_channels * r))`` wide, or no
    attention for ``r = 0``; as before, an attention class or factory given as ``attn_layer`` wins over it."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        se_ratio = kwargs.pop("se_ratio", None)
        if se_ratio is None:
            return init(self, *args, **kwargs)
        warnings.warn("MBConv: 'se_ratio' is deprecated; use attn_layer='se' (its default width is EfficientNet's, "
                      "in_channels // 4; attn_kwargs={'rd_channels': n} sets another) or attn_layer=None",
                      DeprecationWarning, stacklevel=2)
        if not 0.0 <= se_ratio <= 1.0:
            raise ValueError(f"se_ratio must be in [0, 1], got {se_ratio}")
        bound = signature.bind(self, *args, **kwargs)
        if bound.arguments.get("attn_layer", "se") in (None, "se"):
            bound.arguments["attn_layer"] = "se" if se_ratio > 0 else None
            in_channels = bound.arguments["in_channels"]
            bound.arguments["attn_kwargs"] = {"rd_channels": max(1, int(in_channels * se_ratio)),
                                              **(bound.arguments.get("attn_kwargs") or {})}
        return init(*bound.args, **bound.kwargs)

    return wrapper


@register_block("mbconv", family="conv", layout="conv",
                paper="Tan & Le, EfficientNet: Rethinking Model Scaling for CNNs, ICML 2019 (MBConv of MobileNetV2)",
                url="https://arxiv.org/abs/1905.11946",
                example=Example(args=(32, 48), kwargs={"kernel_size": 3, "stride": 2}, input_shape=(2, 32, 16, 16)))
@validated()
class MBConv(nn.Module):
    """Inverted residual block.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: depthwise kernel (3 or 5 in EfficientNet).
        stride: depthwise stride (1 or 2).
        expand_ratio: hidden width ``round(in_channels * expand_ratio)`` (6 in MobileNetV2/EfficientNet).
        attn_layer: attention on the expanded features: a registered ``nchw`` block name, a class or factory
            taking ``channels``, or ``None`` (MobileNetV2).  Default ``"se"``: EfficientNet's SE, whose
            defaults here are ``rd_channels = max(1, in_channels // 4)`` (a quarter of the block *input*) and
            the block's activation.
        attn_kwargs: further keyword arguments of the attention (e.g. ``{"rd_channels": 8}``).
        act_layer: activation (EfficientNet: swish/SiLU; MobileNetV2: ReLU6).
        norm_layer: norm after each convolution.
        drop_path: stochastic-depth rate of the residual branch.

    ``se_ratio=r`` (deprecated) is ``attn_layer="se", attn_kwargs={"rd_channels": max(1, int(in_channels * r))}``
    (``attn_layer=None`` for ``r = 0``).
    """

    @_se_ratio_to_attn_layer
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 expand_ratio: float = 6.0, attn_layer: LayerType = "se", attn_kwargs: dict | None = None,
                 act_layer: LayerType = "silu", norm_layer: LayerType = "batchnorm", drop_path: float = 0.0):
        super().__init__()
        kernel_size, stride, _ = square_conv_geometry(in_channels, out_channels, kernel_size, stride)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        hidden = int(round(in_channels * expand_ratio))
        self.conv_pw = (ConvNormAct(in_channels, hidden, 1, norm_layer=norm_layer, act_layer=act_layer)
                        if expand_ratio != 1 else nn.Identity())
        self.conv_dw = ConvNormAct(hidden, hidden, kernel_size, stride, groups=hidden, norm_layer=norm_layer,
                                   act_layer=act_layer)
        attn_layer, attn_kwargs = get_attn_layer(attn_layer), dict(attn_kwargs or {})
        if attn_layer is SqueezeExcite:  # EfficientNet's SE: width from the block input, the block's activation
            if "reduction" not in attn_kwargs:
                attn_kwargs.setdefault("rd_channels", reduced_channels(in_channels, 4))
            attn_kwargs.setdefault("act_layer", act_layer)
        self.attn = create_attn(attn_layer, hidden, **attn_kwargs)
        self.conv_pwl = ConvNormAct(hidden, out_channels, 1, norm_layer=norm_layer, act_layer=None)
        self.has_skip = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path) if (drop_path > 0 and self.has_skip) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        y = self.conv_pwl(self.attn(self.conv_dw(self.conv_pw(x))))
        return self.drop_path(y) + x if self.has_skip else y
