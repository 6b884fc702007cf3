"""What RepMLP (Ding et al., arXiv 2105.01883) and RepMLPNet (Ding et al., arXiv 2112.11081) share: the
partition perceptron FC3 with its BatchNorm, the local perceptron, and the fold of both into FC3 ("structural
re-parameterization", RepMLPNet's "Locality Injection").  Not a block (not registered).

On a batch of (h, w) partitions with C channels, cut from the feature map by the block::

    FC3:   a grouped 1x1 convolution on the flattened partition, C*h*w -> O*h*w, without bias, then a BN
    local: sum_k BN(conv_k(partition)), k x k grouped convolutions without bias, zero-padded per partition

Every conv + BN branch equals an FC on the flattened partition (its weight is the convolution applied to
the identity basis), so the folded FC3 (with bias) computes FC3 + BN + local exactly.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import fuse_conv_bn_weights, pad_kernel
from visionblocks.reparam import ReparamModule

__all__ = ["PartitionPerceptron"]


def local_perceptron(in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...], groups: int) -> nn.ModuleDict:
    """One ``conv{k}`` branch (k x k grouped conv without bias, then BN) per kernel size k."""
    local = nn.ModuleDict()
    for k in kernel_sizes:
        local[f"conv{k}"] = nn.Sequential()
        local[f"conv{k}"].add_module("conv", nn.Conv2d(in_channels, out_channels, k, padding=k // 2, groups=groups,
                                                       bias=False))
        local[f"conv{k}"].add_module("bn", nn.BatchNorm2d(out_channels))
    return local


def fold_local_perceptron(local: nn.ModuleDict, kmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (kmax x kmax) kernel and the bias of the sum of the conv+BN branches (BNs in eval mode)."""
    kernel, bias = 0, 0
    for branch in local.values():
        kw, kb = fuse_conv_bn_weights(branch.conv.weight, None, branch.bn)
        kernel, bias = kernel + pad_kernel(kw, (kmax, kmax)), bias + kb
    return kernel, bias


def conv_as_fc(kernel: torch.Tensor, groups: int, partition: tuple[int, int]) -> torch.Tensor:
    """The grouped-FC weight (O*h*w, C/groups*h*w, 1, 1) equal to the "same"-padded grouped convolution
    ``kernel`` (O, C/groups, k, k) on one h x w partition: its response to every basis input."""
    h, w = partition
    cg = kernel.shape[1]
    n = cg * h * w
    basis = torch.eye(n, dtype=kernel.dtype, device=kernel.device).reshape(n, cg, h, w).repeat(1, groups, 1, 1)
    resp = F.conv2d(basis, kernel, padding=kernel.shape[-1] // 2, groups=groups)   # (n, O, h, w): one per basis
    return resp.reshape(n, -1).t().reshape(-1, n, 1, 1)


class PartitionPerceptron(ReparamModule):
    """Base of the RepMLP blocks: owns ``fc3`` (FC3), ``fc3_bn`` (its BN) and ``local`` (the local perceptron),
    runs them on a batch of partitions (:meth:`partition_perceptron`) and folds the last two into ``fc3``.

    A subclass sets ``partition`` and ``reparam_conv_k`` and calls :meth:`build_perceptrons` (last, which keeps
    the blocks' parameter order) in ``__init__``.
    """

    deployed_name = "fc3"
    partition: tuple[int, int]
    reparam_conv_k: tuple[int, ...]

    def build_perceptrons(self, in_channels: int, out_channels: int, groups: int, bn_per_position: bool,
                          deploy: bool) -> None:
        """``fc3`` (C*h*w -> O*h*w, ``groups``), ``fc3_bn`` and the ``local`` branches (C -> O, ``groups``); in
        the deploy form the folded ``fc3`` (with bias), ``nn.Identity`` and no branches.

        ``bn_per_position``: ``fc3_bn`` normalises every FC3 output (channel and position: RepMLP's
        ``BatchNorm1d(O*h*w)``), or else every channel over the positions (RepMLPNet's ``BatchNorm2d(O)``).
        """
        h, w = self.partition
        self.perceptron_channels = (in_channels, out_channels)
        self.fc3_shape = (in_channels * h * w, out_channels * h * w, groups)
        self.bn_view = (out_channels * h * w,) if bn_per_position else (out_channels, h, w)
        if deploy:
            self.fc3, self.fc3_bn = self.build_deployed(), nn.Identity()
        else:
            self.fc3 = nn.Conv2d(in_channels * h * w, out_channels * h * w, 1, groups=groups, bias=False)
            self.fc3_bn = nn.BatchNorm1d(self.bn_view[0]) if bn_per_position else nn.BatchNorm2d(out_channels)
        self.local = local_perceptron(in_channels, out_channels, () if deploy else self.reparam_conv_k, groups)

    def partition_perceptron(self, parts: torch.Tensor) -> torch.Tensor:
        """``BN(FC3(p)) + sum_k BN(conv_k(p))`` on partitions ``parts`` (..., C, h, w): (N, O, h, w)."""
        (h, w), (cin, cout) = self.partition, self.perceptron_channels
        out = self.fc3(parts.reshape(-1, cin * h * w, 1, 1))
        out = self.fc3_bn(out.reshape(-1, *self.bn_view)).reshape(-1, cout, h, w)
        if len(self.local):
            conv_in = parts.reshape(-1, cin, h, w)
            for branch in self.local.values():
                out = out + branch(conv_in)
        return out

    def build_deployed(self, device=None, dtype=None) -> nn.Conv2d:
        cin, cout, groups = self.fc3_shape
        return nn.Conv2d(cin, cout, 1, groups=groups, bias=True, device=device, dtype=dtype)

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """FC3 with its BN fused, plus every local branch as an FC (RepMLP Sec. 3.3)."""
        fc3, bn = self.fc3, self.fc3_bn
        rows = fc3.out_channels // bn.num_features            # consecutive FC3 outputs sharing one BN channel
        weight, bias = fuse_conv_bn_weights(fc3.weight.reshape(bn.num_features, -1), None, bn)
        weight, bias = weight.reshape(fc3.weight.shape), bias.repeat_interleave(rows)
        if len(self.local):
            kernel, kbias = fold_local_perceptron(self.local, max(self.reparam_conv_k))
            h, w = self.partition
            weight = weight + conv_as_fc(kernel, fc3.groups, self.partition)
            bias = bias + kbias.repeat_interleave(h * w)
        return weight, bias

    def drop_training_parts(self) -> None:
        self.fc3_bn, self.local = nn.Identity(), nn.ModuleDict()
