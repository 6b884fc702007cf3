"""The RepMLPNet block (Ding et al., RepMLPNet: Hierarchical Vision MLP with Re-parameterized Locality,
CVPR 2022, arXiv 2112.11081), the re-parameterizable unit of ``models/repmlpnet.py``.  Not registered: it
is tied to its network's partition sizes (not in the block catalogue).

On a (C, H, W) map cut into (h, w) partitions, with the C channels in ``S`` share-sets::

    Global Perceptron:   g = sigmoid(FC(ReLU(FC(avgpool(x)))))               # C -> C/4 -> C, per channel
    Channel Perceptron:  P = BN(FC3_s(x_partition))     # one (h*w x h*w) FC per share-set, shared by its channels
    Local Perceptron:    L = sum_k BN(DWConv_k(x_partition))                  # k in (1, 3), per share-set
    output = (P + L) * g

"Locality Injection" (``reparameterize()``) folds the conv branches and the BN into FC3: the same fold as the
RepMLP block's (:class:`~visionblocks.blocks.reparam._repmlp.PartitionPerceptron`), with the share-sets as
FC3's channels and groups.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import check_divisible, spatial_mean

from ._repmlp import PartitionPerceptron

__all__ = ["RepMLPNetBlock"]


class RepMLPNetBlock(PartitionPerceptron):
    """Global, channel (share-set FC) and local (depthwise conv) perceptrons; re-parameterizable.

    Args:
        channels: C; must be divisible by ``num_sharesets``.
        partition: (h, w); the input's height/width must be multiples of it.
        num_sharesets: S, the number of independent (h*w x h*w) FCs.
        reparam_conv_k: kernel sizes of the local perceptron (paper: (1, 3)).
        gp_reduction: reduction of the global perceptron (paper: 4).
        deploy: build the folded inference form directly.
    """

    def __init__(self, channels: int, partition=(7, 7), num_sharesets: int = 1, reparam_conv_k=(1, 3),
                 gp_reduction: int = 4, deploy: bool = False):
        super().__init__(deploy)
        check_divisible("channels", channels, "num_sharesets", num_sharesets)
        self.channels, self.partition, self.sets = channels, tuple(partition), num_sharesets
        self.reparam_conv_k = tuple(reparam_conv_k or ())
        self.gp_fc1 = nn.Conv2d(channels, channels // gp_reduction, 1)
        self.gp_fc2 = nn.Conv2d(channels // gp_reduction, channels, 1)
        s = num_sharesets
        self.build_perceptrons(s, s, s, bn_per_position=False, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h, w = self.partition
        hp, wp = H // h, W // w
        g = torch.sigmoid(self.gp_fc2(F.relu(self.gp_fc1(spatial_mean(x, keepdim=True)))))
        parts = x.reshape(B, C, hp, h, wp, w).permute(0, 2, 4, 1, 3, 5)       # (B, hp, wp, C, h, w)
        out = self.partition_perceptron(parts)                                 # share-sets as channels
        out = out.reshape(B, hp, wp, C, h, w).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)
        return out * g
