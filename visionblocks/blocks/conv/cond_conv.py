"""Conditionally parameterized convolution (Yang, Bender, Le & Ngiam, CondConv: Conditionally Parameterized
Convolutions for Efficient Inference, NeurIPS 2019, arXiv 1904.04971).

``y = conv(x, sum_i r_i(x) W_i)`` with the example-dependent routing ``r(x) = sigmoid(GAP(x) R + c)``
(independent sigmoids, *not* a softmax: the routing weights need not sum to 1), equal by linearity to the
mixture of experts ``sum_i r_i(x) conv(x, W_i)`` at the cost of one convolution.  The per-sample kernels run
as one grouped convolution (batch-as-groups).  The routing may instead be given to ``forward`` (CondConv
EfficientNets share one routing between the convolutions of a block).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import check_nchw, spatial_mean
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._per_sample import KernelBankConv

__all__ = ["CondConv"]


@register_block("cond_conv", family="conv", layout="conv",
                paper="Yang et al., CondConv: Conditionally Parameterized Convolutions for Efficient Inference, "
                      "NeurIPS 2019",
                url="https://arxiv.org/abs/1904.04971",
                example=Example(args=(16, 32, 3, 2), input_shape=(2, 16, 14, 14)))
@validated()
class CondConv(KernelBankConv):
    """A convolution whose kernel is a sigmoid-routed mixture of ``num_experts`` kernels.

    Args:
        in_channels, out_channels: channels in and out (divisible by ``groups``).
        kernel_size, stride, padding (``None``: "same"), dilation, groups: of the convolution
            (``groups=in_channels`` gives CondConv's depthwise form).
        bias: per-expert biases mixed like the kernels (EfficientNet: none, BN follows).
        num_experts: n (paper: 8 for CondConv-EfficientNet; swept 1..32).
        routing: build the block's own routing function (``False`` when the routing weights are always
            given to ``forward``, as in a CondConv MBConv block that shares one routing).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, bias: bool = False, num_experts: int = 8, routing: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         num_experts, "num_experts")
        self.num_experts = num_experts
        self.routing = nn.Linear(in_channels, num_experts) if routing else None
        self.reset_parameters()

    def route(self, x: torch.Tensor) -> torch.Tensor:
        """r(x) = sigmoid(GAP(x) R + c): (B, num_experts), each in (0, 1)."""
        if self.routing is None:
            raise ValueError("this CondConv was built with routing=False: pass routing_weights to forward")
        return torch.sigmoid(self.routing(spatial_mean(x)))

    def forward(self, x: torch.Tensor, routing_weights: torch.Tensor | None = None) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        r = self.route(x) if routing_weights is None else routing_weights
        if r.shape != (x.shape[0], self.num_experts):
            raise ValueError(f"routing_weights must be (B, {self.num_experts}) = {(x.shape[0], self.num_experts)}, "
                             f"got {tuple(r.shape)}")
        return self.mixed_conv(x, r)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_experts={self.num_experts}"
