"""Triplet Attention (Misra et al., Rotate to Attend: Convolutional Triplet Attention Module, WACV 2021,
arXiv 2010.03045).

Three branches capture the (C, W), (H, C) and (H, W) interactions of ``x``.  Each branch "rotates" the
tensor so that one axis plays the role of channels, reduces that axis with Z-pool
``Z(t) = [max(t); mean(t)]`` (2 planes), and gates the remaining plane with
``sigmoid(BN(conv7x7(Z)))`` (a 2 -> 1 convolution without bias):

``y = 1/3 * (x * g_cw + x * g_hc + x * g_hw)`` with ``g_cw = G(Z_H(x))`` on the (C, W) plane,
``g_hc = G(Z_W(x))`` on the (H, C) plane and ``g_hw = G(Z_C(x))`` on the (H, W) plane.

The rotations of the paper are done here on the small pooled planes only (never on ``x``); the convolution
of each plane uses the same axis order as the paper's rotated tensors ((C, W), (H, C) and (H, W)).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    PlaneConv2d, check_nchw, check_odd, check_positive_int, is_channels_last, layout_like, max_over, mean_over,
    transformed,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["TripletAttention", "ZPoolGate"]


class ZPoolGate(nn.Module):
    """``sigmoid(BN(conv_k(Z)))`` for a Z-pooled (B, 2, P, Q) plane -> (B, 1, P, Q)."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = PlaneConv2d(2, 1, kernel_size)  # banded along the long axis of a (C, W) or (H, C) plane
        self.bn = nn.BatchNorm2d(1, momentum=0.01)  # the authors' BN momentum

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.bn(self.conv(z)))


def _zpool(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Z-pool: ``[max; mean]`` over ``dim``, stacked as 2 channels at position 1."""
    return torch.stack([max_over(x, dim), mean_over(x, dim)], dim=1)


@register_block("triplet_attention", family="attention", layout="nchw",
                paper="Misra et al., Rotate to Attend: Convolutional Triplet Attention Module, WACV 2021",
                url="https://arxiv.org/abs/2010.03045",
                example=Example(args=(64,), kwargs={"kernel_size": 7}, input_shape=(2, 64, 14, 14)))
@validated(kernel_size="odd")
class TripletAttention(nn.Module):
    """Three rotated Z-pool + 7x7-conv gates, averaged.

    Args:
        channels: input (= output) channels C (the block has no channel-dependent weights; C is checked).
        kernel_size: odd kernel of the three gate convolutions (paper: 7).
        no_spatial: drop the (H, W) branch and average the two others (the paper's ablation; default False).
    """

    def __init__(self, channels: int, kernel_size: int = 7, no_spatial: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_odd("kernel_size", check_positive_int("kernel_size", kernel_size))
        self.gate_cw = ZPoolGate(kernel_size)
        self.gate_hc = ZPoolGate(kernel_size)
        self.gate_hw = None if no_spatial else ZPoolGate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        k = 0.5 if self.gate_hw is None else 1.0 / 3.0
        # the average of the branches x * g is x times the average gate; the weight k goes on the small gates
        # (C, W) plane: H is reduced -> gate (B, 1, C, W) broadcast over H
        g_cw = self.gate_cw(_zpool(x, 2)).transpose(1, 2) * k                    # (B, C, 1, W)
        # (H, C) plane: W is reduced; the plane is laid out (H, C) as in the paper's rotation
        g_hc = self.gate_hc(_zpool(x, 3).transpose(2, 3)).permute(0, 3, 2, 1) * k  # (B, C, H, 1)
        g_hw = None if self.gate_hw is None else self.gate_hw(_zpool(x, 1)) * k  # (B, 1, H, W)
        # the two (B, C, .) gates are laid out as x (C innermost for a channels-last x, else W and H): a gate
        # laid out across x's order leaves g, and the products over x, striding through one of the layouts
        g_cw, g_hc = layout_like(g_cw, x), layout_like(g_hc, x)
        if torch.is_grad_enabled() and is_channels_last(x) and not torch.compiler.is_compiling():
            # on the (B, H, W, C) view: autograd reduces the gate sum's gradient to each gate's shape in the view's
            # order, vectorised along C (on the (B, C, H, W) view of a channels-last map those sums cost 2-3x)
            xp, g_cw, g_hc = x.permute(0, 2, 3, 1), g_cw.permute(0, 2, 3, 1), g_hc.permute(0, 2, 3, 1)
            g = g_cw + g_hc                                                      # (B, H, W, C)
            return (xp * (g if g_hw is None else g + g_hw.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        # (dynamo refuses a strided out=, and fuses; the TorchScript ONNX exporter translates no add(out=))
        if (torch.is_grad_enabled() or transformed(x, g_cw, g_hc, g_hw) or torch.compiler.is_compiling()
                or torch.jit.is_tracing()):
            g = g_cw + g_hc                                                      # (B, C, H, W)
            return x * (g if g_hw is None else g + g_hw)
        # without autograd, g is laid out as x, and + g_hw and the product are written over it
        g = torch.add(g_cw, g_hc, out=torch.empty_like(x))
        if g_hw is not None:
            g.add_(g_hw)
        return g.mul_(x)
