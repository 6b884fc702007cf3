"""DO-Conv: Depthwise Over-parameterized Convolutional Layer (Cao et al., arXiv 2006.12030, IEEE TIP 2022).

A convolution ``W`` of shape (C_out, C_in/g, D_mul) composed with a per-input-channel depthwise kernel ``D`` of
shape (C_in, M*N, D_mul), ``D_mul >= M*N``.  Training uses the composed kernel (paper Eq. 4, "kernel
composition")::

    W'[o, i, m] = sum_s (D + I)[c(o, i), m, s] * W[o, i, s]        (c: absolute input channel, I: identity)

``D`` starts at zero (``D + I = I``: the layer starts as an ordinary convolution).  ``W'`` is a plain
(C_out, C_in/g, M, N) kernel, so ``reparameterize()`` (:class:`visionblocks.reparam.ReparamModule`) folds the
layer into one ``nn.Conv2d`` named ``conv`` with identical output (``deploy=True`` builds that form directly).
For a 1x1 kernel there is nothing to over-parameterize (``D`` is absent), as in the official code.

What loads from the authors' code (yangyanli/DO-Conv, ``DOConv2d``): plain (g = 1) and depthwise
(C_out = g) layers compose exactly as here.  Grouped layers with C_out != g pair the D slices differently:
they reshape ``W`` (C_out, C_in/g, D_mul) to (C_out/g, C_in, D_mul), so output channel o is composed with the
D slices of group ``o mod g`` instead of its own group ``o // (C_out/g)`` (the paper's c(o, i) above).  Such
a layer's weights compose another kernel here; their folded kernel (``DoW``) loads exactly.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (
    DerivedBuffers, check_divisible, check_nchw, check_odd, check_positive_int, same_padding, to_2tuple,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block
from visionblocks.reparam import ReparamModule, drop_parameter

__all__ = ["DOConv2d"]


@register_block("do_conv", family="conv", layout="conv",
                paper="Cao et al., DO-Conv: Depthwise Over-parameterized Convolutional Layer, IEEE TIP 2022",
                url="https://arxiv.org/abs/2006.12030",
                example=Example(args=(32, 64, 3), input_shape=(2, 32, 14, 14)))
@validated()
class DOConv2d(DerivedBuffers, ReparamModule):
    """Depthwise over-parameterized convolution, foldable into a plain ``nn.Conv2d``.

    Args:
        in_channels, out_channels, kernel_size, stride, dilation, groups, bias: as ``nn.Conv2d`` (odd kernel,
            "same" padding so the output is ``ceil(H / stride)``).  ``groups=in_channels`` is the paper's
            DO-DConv, other values DO-GConv.
        D_mul: depth multiplier of ``D`` (paper default and minimum: M*N).
        deploy: build the folded inference form (one ``nn.Conv2d`` named ``conv``).
    """

    deployed_name = "conv"

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride: int = 1, dilation: int = 1,
                 groups: int = 1, bias: bool = True, D_mul: int | None = None, deploy: bool = False):
        super().__init__(deploy)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        check_positive_int("groups", groups)
        check_positive_int("dilation", dilation)
        check_divisible("in_channels", in_channels, "groups", groups)
        check_divisible("out_channels", out_channels, "groups", groups)
        self.kernel_size = tuple(to_2tuple(kernel_size))
        kh, kw = self.kernel_size
        check_odd("kernel_size", kh, "same padding")
        check_odd("kernel_size", kw, "same padding")
        stride = tuple(to_2tuple(stride))
        self.stride, self.dilation, self.groups, self.use_bias = stride, dilation, groups, bias
        self.padding = (same_padding(kh, dilation), same_padding(kw, dilation))
        mn = kh * kw
        self.D_mul = mn if D_mul is None else check_positive_int("D_mul", D_mul)
        if self.D_mul < mn:
            raise ValueError(f"D_mul must be >= kernel height * width ({mn}), got {self.D_mul}")
        if deploy:
            self.conv = self.build_deployed()
            self.W = self.D = self.bias = None
            return
        self.conv = None
        self.W = nn.Parameter(torch.empty(out_channels, in_channels // groups, self.D_mul))
        nn.init.kaiming_uniform_(self.W.view(out_channels, in_channels // groups, -1), a=5 ** 0.5)
        if mn > 1:
            self.D = nn.Parameter(torch.zeros(in_channels, mn, self.D_mul))
            self.init_derived_buffers()
        else:
            self.D = None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        if bias:
            bound = 1 / (in_channels // groups * mn) ** 0.5
            nn.init.uniform_(self.bias, -bound, bound)

    def build_deployed(self, device=None, dtype=None) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                         self.dilation, self.groups, bias=self.use_bias, device=device, dtype=dtype)

    def composed_weight(self) -> torch.Tensor:
        """The (C_out, C_in/g, M, N) kernel ``W'`` of the training form."""
        kh, kw = self.kernel_size
        out, cin_g = self.W.shape[:2]
        if self.D is None:  # 1x1: W (C_out, C_in/g, 1)
            return self.W.reshape(out, cin_g, kh, kw)
        g = self.groups
        d = (self.D + self.d_diag).reshape(g, cin_g, kh * kw, self.D_mul)
        w = self.W.reshape(g, out // g, cin_g, self.D_mul)
        return torch.einsum("gims,gois->goim", d, w).reshape(out, cin_g, kh, kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        if self.is_reparameterized:
            return self.conv(x)
        return F.conv2d(x, self.composed_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)

    def derived_buffers(self) -> dict[str, torch.Tensor]:
        """``d_diag``: D's identity part, (C_in, M N, D_mul) (a buffer of the training form while D exists)."""
        if getattr(self, "D", None) is None:
            return {}
        mn = self.D.shape[1]
        eye = torch.eye(mn)
        d_diag = torch.cat([eye.repeat(1, self.D_mul // mn), torch.zeros(mn, self.D_mul % mn)], 1)
        return {"d_diag": d_diag.expand(self.D.shape[0], mn, self.D_mul).clone()}

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.composed_weight(), self.bias

    def drop_training_parts(self) -> None:
        """``W``, ``D`` and ``bias`` now live in ``conv``: the attributes stay, as ``None``, as in the deploy form."""
        for name in ("W", "D", "bias"):  # (pruned or parametrized ones too)
            drop_parameter(self, name)
        if hasattr(self, "d_diag"):
            del self.d_diag
        self.W = self.D = self.bias = None
