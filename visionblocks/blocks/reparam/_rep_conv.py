"""What the re-parameterizable convolution blocks share (RepVGG, arXiv 2101.03697; ACNet, arXiv 1908.03930;
DBB, arXiv 2103.13425).

Each block is ``act(se(body(x)))``, ``se`` the optional attention after the branch sum (``attn_layer``;
RepVGG's SE is ``attn_layer="se"``, which the blocks' deprecated ``use_se=True`` still means).  In the training
form ``body`` is a :class:`Branches` container whose branches all map (B, Cin, H, W) to
(B, Cout, ceil(H/s), ceil(W/s)) and are summed; each branch can give the kxk kernel and bias of the single
convolution it equals in eval mode (:func:`branch_kernel_bias`).  Folding (``reparameterize()``, the protocol
of :class:`visionblocks.reparam.ReparamModule`) replaces ``body`` with one
``nn.Conv2d(Cin, Cout, k, s, k // 2, groups=g, bias=True)``, which is also what ``deploy=True`` builds
directly, so the two forms share their state-dict keys (``body.weight``, ``body.bias``, and ``se.*``).  The
fusion arithmetic is ``visionblocks.layers.fuse``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from visionblocks.layers import (
    BATCH_NORMS_2D, ConvNormAct, LayerType, check_divisible, check_nchw, check_odd, check_positive_int, create_act,
    create_attn, dense_strides, fuse_conv_bn_weights, identity_kernel, pad_kernel,
)
from visionblocks.registry import Example
from visionblocks.reparam import ReparamModule

__all__ = ["Branches", "RepConvBase", "branch_kernel_bias", "conv_bn", "conv_example"]


def conv_example(in_channels: int = 32, out_channels: int = 32) -> Example:
    """The registry example of a re-parameterizable convolution: the papers' k = 3 at stride 1, on 16x16."""
    return Example(args=(in_channels, out_channels), kwargs={"kernel_size": 3, "stride": 1},
                   input_shape=(2, in_channels, 16, 16))


def conv_bn(in_channels: int, out_channels: int, kernel_size, stride: int, padding, groups: int) -> ConvNormAct:
    """A bias-free convolution followed by BatchNorm (no activation): the unit every branch is made of."""
    return ConvNormAct(in_channels, out_channels, kernel_size, stride, padding=padding, groups=groups,
                       bias=False, act_layer=None)


def branch_kernel_bias(branch: nn.Module, kernel_size: int, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (Cout, Cin/g, k, k) kernel and (Cout,) bias of the one convolution a branch equals in eval mode.

    A conv-BN unit is fused and its kernel centred in kxk; a bare BatchNorm is the identity branch
    (RepVGG); any other branch provides ``kernel_bias(kernel_size)`` itself (DBB's composite branches).
    """
    k = (kernel_size, kernel_size)
    if isinstance(branch, ConvNormAct):
        w, b = fuse_conv_bn_weights(branch.conv.weight, branch.conv.bias, branch.bn)
        return pad_kernel(w, k), b
    if isinstance(branch, BATCH_NORMS_2D):
        w = identity_kernel(branch.num_features, groups, k, device=branch.running_mean.device,
                            dtype=branch.running_mean.dtype)
        return fuse_conv_bn_weights(w, None, branch)
    return branch.kernel_bias(kernel_size)


class Branches(nn.ModuleDict):
    """Parallel branches whose outputs are summed (the training form of a re-parameterizable conv)."""

    def __init__(self, branches: dict[str, nn.Module], kernel_size: int, groups: int):
        super().__init__(branches)
        self.kernel_size, self.groups = kernel_size, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the third and later branches accumulate in place into the sum of the first two, a tensor of our own;
        # never into a branch's output, which a forward hook on that branch may hold
        out, owned = None, False
        x = dense_strides(x)  # (the identity branch is a BatchNorm on x: see layers.dense_strides)
        for branch in self.values():
            y = branch(x)
            if out is None:
                out = y
            elif owned:
                out.add_(y)
            else:
                out, owned = out + y, True
        return out

    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum of the branches' kernels and biases (eval-mode BatchNorm statistics)."""
        kernel, bias = 0, 0
        for branch in self.values():
            w, b = branch_kernel_bias(branch, self.kernel_size, self.groups)
            kernel, bias = kernel + w, bias + b
        return kernel, bias


class RepConvBase(ReparamModule):
    """``act(se(body(x)))`` with a training form (``build_branches``) and a one-convolution inference form.

    Subclasses implement ``build_branches() -> dict[str, nn.Module]`` (and optionally ``validate()``); folding
    is :class:`~visionblocks.reparam.ReparamModule`'s, with the branches' summed kernels.
    """

    deployed_name = "body"

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, attn_layer: LayerType = None, attn_kwargs: dict | None = None,
                 act_layer: LayerType = None, deploy: bool = False):
        super().__init__(deploy)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.kernel_size = check_odd("kernel_size", check_positive_int("kernel_size", kernel_size),
                                     "the branches are centred in it")
        self.stride = check_positive_int("stride", stride)
        self.groups = check_positive_int("groups", groups)
        check_divisible("in_channels", in_channels, "groups", groups)
        check_divisible("out_channels", out_channels, "groups", groups)
        self.padding = kernel_size // 2
        self.validate()
        self.body = self.build_deployed() if deploy else Branches(self.build_branches(), kernel_size, groups)
        # the attention after the sum and before the activation: RepVGG's optional SE (attn_layer="se")
        self.se = create_attn(attn_layer, out_channels, **(attn_kwargs or {}))
        self.act = create_act(act_layer, inplace=True)

    def validate(self) -> None:
        """Checks of subclass hyper-parameters, run after the common ones and before any layer is built."""

    def build_branches(self) -> dict[str, nn.Module]:  # pragma: no cover - abstract
        raise NotImplementedError

    def build_deployed(self, device=None, dtype=None) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                         groups=self.groups, bias=True, device=device, dtype=dtype)

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.body.fused_kernel_bias()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        return self.act(self.se(self.body(x)))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"groups={self.groups}, reparameterized={self.is_reparameterized}")
