"""The local perceptron of RepMLP (Ding et al., arXiv 2105.01883) and its folding into the FC, shared by the
RepMLP block and RepMLPNet's block.  Not a block (not registered)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import fuse_conv_bn_weights, pad_kernel


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
