"""Dynamic convolution (Chen et al., Dynamic Convolution: Attention over Convolution Kernels, CVPR 2020,
arXiv 1912.03458).

``y = conv(x, sum_k pi_k(x) W_k) + sum_k pi_k(x) b_k`` with ``pi(x) = softmax(FC2(ReLU(FC1(GAP(x)))) / tau)``
(squeeze-and-excitation attention over K kernels, reduction 4, ``sum_k pi_k = 1``).  The temperature tau is
annealed linearly from 30 to 1 over the first 10 epochs (:func:`dynamic_conv_temperature`,
:func:`set_dynamic_conv_temperature`); the block uses its current ``temperature`` buffer identically in
train and eval mode (it is saved with the state dict), so a trained model evaluates with the tau it ended
training with.  The aggregated per-sample kernels run as one grouped convolution (batch-as-groups).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import Mlp, check_nchw, reduced_channels, spatial_mean
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._per_sample import KernelBankConv

__all__ = ["DynamicConv", "dynamic_conv_temperature", "set_dynamic_conv_temperature"]


def dynamic_conv_temperature(epoch: float, anneal_epochs: float = 10, start: float = 30.0, end: float = 1.0) -> float:
    """The paper's schedule: tau falls linearly from ``start`` (30) to ``end`` (1) over the first
    ``anneal_epochs`` (10) epochs, then stays at ``end``."""
    if anneal_epochs <= 0:
        return end
    t = min(max(epoch / anneal_epochs, 0.0), 1.0)
    return start + (end - start) * t


def set_dynamic_conv_temperature(module: nn.Module, temperature: float) -> nn.Module:
    """Set the softmax temperature of every :class:`DynamicConv` in ``module`` (call once per epoch)."""
    for m in module.modules():
        if isinstance(m, DynamicConv):
            m.set_temperature(temperature)
    return module


@register_block("dynamic_conv", family="conv", layout="conv",
                paper="Chen et al., Dynamic Convolution: Attention over Convolution Kernels, CVPR 2020",
                url="https://arxiv.org/abs/1912.03458",
                example=Example(args=(16, 32, 3, 2), input_shape=(2, 16, 14, 14)))
@validated()
class DynamicConv(KernelBankConv):
    """K convolution kernels aggregated per sample by a softmax attention with temperature.

    Args:
        in_channels, out_channels: channels in and out (divisible by ``groups``).
        kernel_size, stride, padding (``None``: "same"), dilation, groups: of the convolution.
        bias: K biases aggregated with the kernels (the paper's ``b~ = sum pi_k b~_k``).
        num_kernels: K (paper: 4).
        reduction: r of the attention's hidden layer ``max(1, C_in // r)`` (paper: 4).
        temperature: initial tau (paper: 30 at the start of training, annealed to 1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, bias: bool = True, num_kernels: int = 4, reduction: int = 4,
                 temperature: float = 30.0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         num_kernels, "num_kernels")
        self.num_kernels = num_kernels
        # the kernel attention's squeeze-and-excitation MLP: GAP(x) -> C_in / r -> ReLU -> K logits
        self.mlp = Mlp(in_channels, reduced_channels(in_channels, reduction), num_kernels, act_layer="relu")
        self.register_buffer("temperature", torch.empty(()))
        self.set_temperature(temperature)
        self.reset_parameters()

    def set_temperature(self, temperature: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature.fill_(float(temperature))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """pi(x): (B, K), rows summing to 1."""
        return torch.softmax(self.mlp(spatial_mean(x)) / self.temperature, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        return self.mixed_conv(x, self.attention(x))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_kernels={self.num_kernels}, temperature={float(self.temperature):g}"
