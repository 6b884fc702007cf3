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

import math

import torch
import torch.nn as nn

from visionblocks.layers import check_divisible, check_nchw, check_positive_int, to_2tuple
from visionblocks.registry import Example, register_block

from ._per_sample import per_sample_conv2d


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
class DynamicConv(nn.Module):
    """K convolution kernels aggregated per sample by a softmax attention with temperature.

    Args:
        in_channels, out_channels: channels in and out (divisible by ``groups``).
        kernel_size, stride, padding (``None``: "same"), dilation, groups: of the convolution.
        bias: K biases aggregated with the kernels (the paper's ``b~ = sum pi_k b~_k``).
        num_kernels: K (paper: 4).
        reduction: r of the attention's hidden layer ``C_in / r`` (paper: 4).
        temperature: initial tau (paper: 30 at the start of training, annealed to 1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, bias: bool = True, num_kernels: int = 4, reduction: int = 4,
                 temperature: float = 30.0):
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.groups = check_positive_int("groups", groups)
        check_divisible("in_channels", in_channels, "groups", groups)
        check_divisible("out_channels", out_channels, "groups", groups)
        self.num_kernels = check_positive_int("num_kernels", num_kernels)
        check_positive_int("reduction", reduction)
        k, self.dilation = to_2tuple(kernel_size), to_2tuple(dilation)
        self.stride = to_2tuple(stride)
        if padding is None:
            if k[0] % 2 == 0 or k[1] % 2 == 0:
                raise ValueError(f"'same' padding (padding=None) needs an odd kernel_size, got {kernel_size}")
            padding = (self.dilation[0] * (k[0] - 1) // 2, self.dilation[1] * (k[1] - 1) // 2)
        self.padding = to_2tuple(padding)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        hidden = max(1, in_channels // reduction)
        self.fc1 = nn.Linear(in_channels, hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, num_kernels)
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.weight = nn.Parameter(torch.empty(num_kernels, out_channels, in_channels // groups, *k))
        self.bias = nn.Parameter(torch.empty(num_kernels, out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each kernel initialised independently as ``nn.Conv2d`` does."""
        fan_in = self.weight[0, 0].numel()
        for i in range(self.num_kernels):
            nn.init.kaiming_uniform_(self.weight[i], a=math.sqrt(5))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def set_temperature(self, temperature: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature.fill_(float(temperature))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """pi(x): (B, K), rows summing to 1."""
        z = self.fc2(self.act(self.fc1(x.mean((2, 3)))))
        return torch.softmax(z / self.temperature, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        pi = self.attention(x)
        weight = torch.einsum("bk,koihw->boihw", pi, self.weight)
        bias = pi @ self.bias if self.bias is not None else None
        return per_sample_conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={tuple(self.weight.shape[-2:])}, "
                f"stride={self.stride}, num_kernels={self.num_kernels}, temperature={float(self.temperature):g}")
