"""Conditionally parameterized convolution (Yang, Bender, Le & Ngiam, CondConv: Conditionally Parameterized
Convolutions for Efficient Inference, NeurIPS 2019, arXiv 1904.04971).

``y = conv(x, sum_i r_i(x) W_i)`` with the example-dependent routing ``r(x) = sigmoid(GAP(x) R + c)``
(independent sigmoids, *not* a softmax: the routing weights need not sum to 1), equal by linearity to the
mixture of experts ``sum_i r_i(x) conv(x, W_i)`` at the cost of one convolution.  The per-sample kernels run
as one grouped convolution (batch-as-groups).  The routing may instead be given to ``forward`` (CondConv
EfficientNets share one routing between the convolutions of a block).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from visionblocks.layers import check_divisible, check_nchw, check_positive_int, to_2tuple
from visionblocks.registry import Example, register_block

from ._per_sample import per_sample_conv2d


@register_block("cond_conv", family="conv", layout="conv",
                paper="Yang et al., CondConv: Conditionally Parameterized Convolutions for Efficient Inference, "
                      "NeurIPS 2019",
                url="https://arxiv.org/abs/1904.04971",
                example=Example(args=(16, 32, 3, 2), input_shape=(2, 16, 14, 14)))
class CondConv(nn.Module):
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
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.groups = check_positive_int("groups", groups)
        check_divisible("in_channels", in_channels, "groups", groups)
        check_divisible("out_channels", out_channels, "groups", groups)
        self.num_experts = check_positive_int("num_experts", num_experts)
        k, self.dilation = to_2tuple(kernel_size), to_2tuple(dilation)
        self.stride = to_2tuple(stride)
        if padding is None:
            if k[0] % 2 == 0 or k[1] % 2 == 0:
                raise ValueError(f"'same' padding (padding=None) needs an odd kernel_size, got {kernel_size}")
            padding = (self.dilation[0] * (k[0] - 1) // 2, self.dilation[1] * (k[1] - 1) // 2)
        self.padding = to_2tuple(padding)
        self.routing = nn.Linear(in_channels, num_experts) if routing else None
        self.weight = nn.Parameter(torch.empty(num_experts, out_channels, in_channels // groups, *k))
        self.bias = nn.Parameter(torch.empty(num_experts, out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each expert initialised independently as ``nn.Conv2d`` does."""
        fan_in = self.weight[0, 0].numel()
        for i in range(self.num_experts):
            nn.init.kaiming_uniform_(self.weight[i], a=math.sqrt(5))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def route(self, x: torch.Tensor) -> torch.Tensor:
        """r(x) = sigmoid(GAP(x) R + c): (B, num_experts), each in (0, 1)."""
        if self.routing is None:
            raise ValueError("this CondConv was built with routing=False: pass routing_weights to forward")
        return torch.sigmoid(self.routing(x.mean((2, 3))))

    def forward(self, x: torch.Tensor, routing_weights: torch.Tensor | None = None) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        r = self.route(x) if routing_weights is None else routing_weights
        if r.shape != (x.shape[0], self.num_experts):
            raise ValueError(f"routing_weights must be (B, {self.num_experts}) = {(x.shape[0], self.num_experts)}, "
                             f"got {tuple(r.shape)}")
        weight = torch.einsum("bk,koihw->boihw", r, self.weight)
        bias = r @ self.bias if self.bias is not None else None
        return per_sample_conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={tuple(self.weight.shape[-2:])}, "
                f"stride={self.stride}, groups={self.groups}, num_experts={self.num_experts}")
