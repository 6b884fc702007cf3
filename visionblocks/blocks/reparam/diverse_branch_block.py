"""Diverse Branch Block (Ding et al., Diverse Branch Block: Building a Convolution as an Inception-like Unit,
CVPR 2021, arXiv 2103.13425).

Training form (paper Fig. 2 and Sec. 3): the sum of four branches, each a chain of linear operations and BNs,
``y = act(se(kxk-BN + 1x1-BN + (1x1-BN-avg_kxk-BN) + (1x1-BN-kxk-BN)))``; all branches carry the stride
and the groups.  The transforms that fold it (paper Sec. 3.2): I BN into conv, II branch addition, III a
1x1 conv followed by a kxk conv (per group ``W[o,i] = sum_m W2[o,m] W1[m,i]``, bias ``b2 + sum W2 b1``),
IV an average pool is a kxk conv with ``1/k^2`` on each channel, VI a 1x1 kernel centred in kxk.
To make III and IV exact at the borders, the BN after each leading 1x1 conv pads its output with its own
value for a zero input (``beta - mean * gamma / sigma``) instead of padding the input with zeros, as the
authors' code does; that value uses the running statistics (also in training, as in their code: there the BN
call has just updated them with the batch, a dependence that is not differentiated, as BatchNorm's own statistics
are not; its dependence on gamma and beta is, where the authors detach them).  The 1x1 of
the 1x1-kxk branch has ``in_channels`` outputs and is identity-based (``W1 = I + W``, ``W`` zero-initialised)
as in the authors' code; for a depthwise block (``groups == in_channels == out_channels``) it has
``2 * in_channels`` and the 1x1 branch and the avg branch's 1x1 are dropped (the avg branch pools the input).
DBB replaces a conv-BN unit: no activation by default (paper: k = 3).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (
    DerivedBuffers, LayerType, check_divisible, check_positive_int, deprecated_flag, fuse_conv_bn_weights,
    identity_kernel,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import register_block

from ._rep_conv import RepConvBase, conv_bn, conv_example

__all__ = ["DiverseBranchBlock"]


class BNAndPad(nn.Module):
    """BatchNorm, then padding by ``p`` with the BN's response to a zero input (per channel), so that
    ``pad(BN(conv1x1(x)))`` equals ``BN(conv1x1(zero_pad(x)))`` in eval mode."""

    def __init__(self, channels: int, pad: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.pad = pad

    def pad_value(self) -> torch.Tensor:
        bn = self.bn
        return bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(x)
        if self.pad == 0:
            return y
        v = self.pad_value().to(y.dtype).reshape(1, -1, 1, 1)
        return F.pad(y - v, (self.pad,) * 4) + v


class IdentityConv1x1(DerivedBuffers, nn.Module):
    """A (grouped) 1x1 convolution parameterised as ``I + W`` with ``W`` initialised to zero (square only)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.zeros(channels, channels // groups, 1, 1))
        self.init_derived_buffers()

    def derived_buffers(self) -> dict[str, torch.Tensor]:
        """``id_kernel``: the identity's 1x1 grouped kernel."""
        return {"id_kernel": identity_kernel(self.weight.shape[0], self.groups, (1, 1))}

    def kernel(self) -> torch.Tensor:
        return self.weight + self.id_kernel.to(self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel(), None, 1, 0, 1, self.groups)


def _compose_1x1_kxk(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                     groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``conv_kxk(conv_1x1(x) + b1) + b2`` (transform III), both convolutions with ``groups``.

    ``w1``: (M, Cin/g, 1, 1), ``w2``: (Cout, M/g, k, k) -> (Cout, Cin/g, k, k).
    """
    m, cin_g = w1.shape[:2]
    cout, m_g, kh, kw = w2.shape
    w1g = w1.reshape(groups, m_g, cin_g)
    w2g = w2.reshape(groups, cout // groups, m_g, kh, kw)
    kernel = torch.einsum("gomhw,gmi->goihw", w2g, w1g).reshape(cout, cin_g, kh, kw)
    bias = b2 + torch.einsum("gomhw,gm->go", w2g, b1.reshape(groups, m_g)).reshape(cout)
    return kernel, bias


class AvgBranch(nn.Module):
    """``BN(avgpool_kxk(pad(BN(conv1x1(x)))))``, or ``BN(avgpool_kxk(x))`` for a depthwise block."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int,
                 depthwise: bool):
        super().__init__()
        p = kernel_size // 2
        self.groups, self.depthwise = groups, depthwise
        if depthwise:
            self.pre = nn.Identity()
            self.avg = nn.AvgPool2d(kernel_size, stride, p, count_include_pad=True)
        else:
            self.pre = nn.Sequential()
            self.pre.add_module("conv", nn.Conv2d(in_channels, out_channels, 1, 1, 0, groups=groups, bias=False))
            self.pre.add_module("bn", BNAndPad(out_channels, p))
            self.avg = nn.AvgPool2d(kernel_size, stride, 0)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.avg(self.pre(x)))

    def kernel_bias(self, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        k2 = float(kernel_size * kernel_size)
        ref = self.bn.running_mean
        if self.depthwise:  # average pooling of each channel: a depthwise kernel of 1/k^2
            w = torch.full((ref.numel(), 1, kernel_size, kernel_size), 1.0 / k2, device=ref.device, dtype=ref.dtype)
            return fuse_conv_bn_weights(w, None, self.bn)
        w1, b1 = fuse_conv_bn_weights(self.pre.conv.weight, None, self.pre.bn.bn)
        # a 1x1 kernel followed by a per-channel kxk average: each 1x1 tap spread uniformly over kxk
        w = w1.expand(-1, -1, kernel_size, kernel_size) / k2
        return fuse_conv_bn_weights(w, b1, self.bn)


class OneByOneKxKBranch(nn.Module):
    """``BN(conv_kxk(pad(BN(conv1x1(x)))))`` with an identity-based 1x1 (or a plain 1x1 to 2x channels)."""

    def __init__(self, in_channels: int, out_channels: int, internal: int, kernel_size: int, stride: int,
                 groups: int):
        super().__init__()
        self.groups = groups
        if internal == in_channels:
            self.conv1 = IdentityConv1x1(in_channels, groups)
        else:
            self.conv1 = nn.Conv2d(in_channels, internal, 1, 1, 0, groups=groups, bias=False)
        self.bn1 = BNAndPad(internal, kernel_size // 2)
        self.conv2 = nn.Conv2d(internal, out_channels, kernel_size, stride, 0, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.bn1(self.conv1(x))))

    def kernel_bias(self, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        k1 = self.conv1.kernel() if isinstance(self.conv1, IdentityConv1x1) else self.conv1.weight
        w1, b1 = fuse_conv_bn_weights(k1, None, self.bn1.bn)
        w2, b2 = fuse_conv_bn_weights(self.conv2.weight, None, self.bn2)
        return _compose_1x1_kxk(w1, b1, w2, b2, self.groups)


@register_block("diverse_branch_block", family="reparam", layout="conv",
                paper="Ding et al., Diverse Branch Block: Building a Convolution as an Inception-like Unit, CVPR 2021",
                url="https://arxiv.org/abs/2103.13425",
                example=conv_example())
@validated()
class DiverseBranchBlock(RepConvBase):
    """kxk, 1x1, 1x1-avg and 1x1-kxk branches (each with BNs) summed; folds to one kxk convolution.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: odd k (paper: 3; 7 for a ResNet stem).
        stride: stride of every branch.
        groups: groups of every convolution; must divide both channel counts.
        internal_channels: width of the 1x1-kxk branch's middle (default: ``in_channels``, identity-based
            1x1; ``2 * in_channels`` for a depthwise block); must be divisible by ``groups``.
        attn_layer: attention after the sum, before the activation: a registered ``nchw`` block name, a class
            taking ``channels``, or None (RepVGG's optional SE: ``"se"``, C -> C/16 -> C).
        attn_kwargs: further keyword arguments of ``attn_layer``.
        act_layer: activation after the sum (paper: none, DBB replaces conv-BN).
        deploy: build the folded inference form (one kxk convolution with bias) directly.
    """

    @deprecated_flag("use_se", "attn_layer", "se")  # RepVGG's flag
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, internal_channels: int | None = None, attn_layer: LayerType = None,
                 attn_kwargs: dict | None = None, act_layer: LayerType = None, deploy: bool = False):
        self.internal_channels = internal_channels
        super().__init__(in_channels, out_channels, kernel_size, stride, groups, attn_layer, attn_kwargs, act_layer,
                         deploy)

    def validate(self) -> None:
        self.depthwise = self.groups == self.in_channels == self.out_channels
        if self.internal_channels is None:
            self.internal_channels = 2 * self.in_channels if self.depthwise else self.in_channels
        check_positive_int("internal_channels", self.internal_channels)
        check_divisible("internal_channels", self.internal_channels, "groups", self.groups)

    def build_branches(self) -> dict[str, nn.Module]:
        cin, cout, k, s, g = self.in_channels, self.out_channels, self.kernel_size, self.stride, self.groups
        branches = {"origin": conv_bn(cin, cout, k, s, k // 2, g)}
        if not self.depthwise:
            branches["conv_1x1"] = conv_bn(cin, cout, 1, s, 0, g)
        branches["avg"] = AvgBranch(cin, cout, k, s, g, self.depthwise)
        branches["conv_1x1_kxk"] = OneByOneKxKBranch(cin, cout, self.internal_channels, k, s, g)
        return branches
