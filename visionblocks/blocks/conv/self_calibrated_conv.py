"""Self-Calibrated Convolution, SCConv (Liu et al., "Improving Convolutional Networks with Self-Calibrated
Convolutions", CVPR 2020, https://mmcheng.net/scconv/).

The input ``X`` (C channels) is split into halves ``X1 | X2``; the filters into four portions ``K1..K4`` (paper
Sec. 3.1, Eq. 1-4)::

    Y1 = K1 * X1                                              (plain branch)
    T1 = AvgPool_r(X2);  X2' = Up(K2 * T1)                    (r = pooling_r, Up = nearest to X2's size)
    Y2' = (K3 * X2) . sigmoid(X2 + X2')                       (self-calibration)
    Y2 = K4 * Y2'
    Y = act(concat(Y1, Y2))

Every ``K_i`` is a ``k x k`` convolution followed by BatchNorm (as in the authors' code, MCG-NKU/SCNet);
``K1`` and ``K4`` carry the stride, ``K2``/``K3`` work at the input resolution.  ``K2``/``K3`` map C/2 -> C/2
(the identity ``X2`` inside the sigmoid needs it); ``K1``/``K4`` map C/2 -> C_out/2.  In SCNet the two halves
come from the bottleneck's first 1x1 convolution(s), so splitting one input is the same layer.

``AvgPool_r`` is the authors' ``AvgPool2d(r, r)`` (floor mode: a partial border window is dropped, so at 14x14
with r = 4 it sees the top-left 12x12).  Only where the input is smaller than ``r`` (H or W < r), where that
operator has no output, it falls back to ``ceil_mode`` (a partial window averages the pixels it covers).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (
    square_conv_geometry, ConvNormAct, LayerType, cat_channels, check_divisible, check_nchw, check_positive_int, create_act,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block


__all__ = ["SelfCalibratedConv"]


@register_block("self_calibrated_conv", family="conv", layout="conv",
                paper="Liu et al., Improving Convolutional Networks with Self-Calibrated Convolutions, CVPR 2020",
                url="https://mmcheng.net/scconv/",
                example=Example(args=(64, 64, 3), kwargs={"pooling_r": 4}, input_shape=(2, 64, 16, 16)))
@validated()
class SelfCalibratedConv(nn.Module):
    """Self-calibrated convolution (the SCNet bottleneck's middle layer).

    Args:
        in_channels, out_channels: both even; the calibrated half keeps ``in_channels / 2`` channels inside.
        kernel_size: k of K1..K4 (paper: 3), odd.
        stride: stride of K1 and K4.
        pooling_r: down-sampling rate r of the calibration branch (paper: 4).
        groups: groups of K1..K4 (SCNet-50: 1).
        norm_layer: after every K_i (paper: BatchNorm).
        act_layer: on the concatenated output (paper: ReLU; ``None`` for none).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 pooling_r: int = 4, groups: int = 1, norm_layer: LayerType = "batchnorm",
                 act_layer: LayerType = "relu"):
        super().__init__()
        kernel_size, stride, _ = square_conv_geometry(in_channels, out_channels, kernel_size, stride, groups)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.pooling_r = check_positive_int("pooling_r", pooling_r)
        check_divisible("in_channels", in_channels, "2 * groups", 2 * groups)
        check_divisible("out_channels", out_channels, "2 * groups", 2 * groups)
        ci, co = in_channels // 2, out_channels // 2

        def k(cin: int, cout: int, s: int = 1) -> nn.Module:
            return ConvNormAct(cin, cout, kernel_size, s, groups=groups, norm_layer=norm_layer, act_layer=None)

        self.k1 = k(ci, co, stride)
        self.k2 = k(ci, ci)
        self.k3 = k(ci, ci)
        self.k4 = k(ci, co, stride)
        self.act = create_act(act_layer, inplace=True)

    def _pool(self, x2: torch.Tensor) -> torch.Tensor:
        """The authors' ``AvgPool2d(r, r)``; on a map smaller than r (H or W), where it has no output, ceil mode
        (the mean of the whole map along that axis, and of the partial last window along the other)."""
        r = self.pooling_r
        h, w = x2.shape[-2:]
        if torch.jit.is_tracing():
            # the same without a Python test of the size, which a trace (the TorchScript ONNX exporter) keeps as a
            # constant: SCNet-50 exported at 32x32 pooled 5x5 maps in ceil mode at 65x71 (0.16 off, silently).
            # Cropped to whole windows where both sides hold one (min(k, 1) = 2k // (k + 1) for k = size // r),
            # ceil mode is floor mode; uncropped it is the small-map case
            whole = (2 * (h // r)) // (h // r + 1) * ((2 * (w // r)) // (w // r + 1))
            return F.avg_pool2d(x2[:, :, :h - h % r * whole, :w - w % r * whole], r, r, ceil_mode=True)
        if h < r or w < r:  # (a Python branch: torch.compile guards on it; a SymBool as ceil_mode fails there)
            return F.avg_pool2d(x2, r, r, ceil_mode=True)
        return F.avg_pool2d(x2, r, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        x1, x2 = x.chunk(2, dim=1)
        t = F.interpolate(self.k2(self._pool(x2)), size=(x2.shape[2], x2.shape[3]), mode="nearest")
        y2 = self.k4(self.k3(x2) * torch.sigmoid(x2 + t))
        return self.act(cat_channels([self.k1(x1), y2]))  # (k1 and k4 end with a BatchNorm)
