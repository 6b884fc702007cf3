"""RepMLP block (Ding et al., RepMLP: Re-parameterizing Convolutions into Fully-connected Layers for Image
Recognition, arXiv 2105.01883).

The (C, H, W) map is cut into (H/h) x (W/w) partitions of size (h, w) (paper, Sec. 3)::

    Global Perceptron:    v = FC2(ReLU(FC1(flatten(BN(AvgPool_{h x w}(X))))));  X' = X + v (one value per
                          channel and partition, broadcast over the partition)
    Partition Perceptron: P = BN1d(FC3(flatten(X'_partition)))   # C*h*w -> O*h*w, grouped (g groups)
    Local Perceptron:     L = sum_k BN(conv_k(X'_partition))     # k x k convs, zero-padded per partition
    output = P + L, re-assembled to (O, H, W)

Every conv + BN branch of the local perceptron is equivalent to an FC on the flattened partition (its
weight is the conv applied to the identity basis), so ``reparameterize()`` folds the BNs, merges the
convolutions into FC3 (:class:`~visionblocks.blocks.reparam._repmlp.PartitionPerceptron`, shared with
RepMLPNet) and the BN after the pooling into FC1 ("structural re-parameterization").  FC1 and FC3 are tied to
the spatial size and the partition size by design.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (check_divisible, check_nchw, check_odd, check_positive_int, check_size,
                                 fuse_conv_bn_weights, is_channels_last, to_2tuple)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._repmlp import PartitionPerceptron

__all__ = ["RepMLPBlock"]


@register_block("repmlp_block", family="reparam", layout="nchw", fixed_size=True,
                paper="Ding et al., RepMLP: Re-parameterizing Convolutions into Fully-connected Layers for Image "
                      "Recognition, arXiv 2021",
                url="https://arxiv.org/abs/2105.01883",
                example=Example(args=(16, (14, 14)), kwargs={"partition": (7, 7)}, input_shape=(2, 16, 14, 14)))
@validated()
class RepMLPBlock(PartitionPerceptron):
    """Global, partition and local perceptrons; the local (conv) perceptron folds into the partition FC.

    Args:
        channels: input channels C.
        size: (H, W) the block is built for (fixed by design).
        partition: (h, w) partition size; must divide ``size`` (paper: 7x7 at 14x14).
        out_channels: output channels O (default C).
        reparam_conv_k: kernel sizes of the local perceptron's conv branches, odd (paper code: (1, 3, 5)).
        fc1_fc2_reduction: reduction of the global perceptron's hidden layer (paper code: 1).
        fc3_groups: groups g of FC3 and of the convs; must divide C and O (paper code: 4).
        deploy: build the folded inference form directly.
    """

    def __init__(self, channels: int, size=(14, 14), partition=(7, 7), out_channels: int | None = None,
                 reparam_conv_k=(1, 3, 5), fc1_fc2_reduction: int = 1, fc3_groups: int = 4, deploy: bool = False):
        super().__init__(deploy)
        self.channels = check_positive_int("channels", channels)
        self.out_channels = check_positive_int("out_channels", out_channels if out_channels is not None else channels)
        self.size = tuple(check_positive_int("size", s) for s in to_2tuple(size))
        self.partition = tuple(check_positive_int("partition", s) for s in to_2tuple(partition))
        check_positive_int("fc1_fc2_reduction", fc1_fc2_reduction)
        self.groups = check_positive_int("fc3_groups", fc3_groups)
        (H, W), (h, w) = self.size, self.partition
        check_divisible("height H", H, "the partition height h", h)
        check_divisible("width W", W, "the partition width w", w)
        check_divisible("channels", channels, "fc3_groups", fc3_groups)
        check_divisible("out_channels", self.out_channels, "fc3_groups", fc3_groups)
        self.reparam_conv_k = tuple(reparam_conv_k or ())
        for i, k in enumerate(self.reparam_conv_k):
            check_odd(f"reparam_conv_k[{i}]", check_positive_int(f"reparam_conv_k[{i}]", k))
            if k > min(h, w) * 2 + 1:
                raise ValueError(f"kernel {k} is larger than the partition {self.partition} can use")
        self.parts = (H // h, W // w)
        self.has_global = self.parts != (1, 1)
        C, O = self.channels, self.out_channels
        if self.has_global:
            n = C * self.parts[0] * self.parts[1]
            hidden = n // fc1_fc2_reduction
            if hidden < 1:
                raise ValueError(f"fc1_fc2_reduction ({fc1_fc2_reduction}) leaves no hidden unit for {n} inputs")
            self.gp_bn = nn.Identity() if deploy else nn.BatchNorm2d(C)
            self.fc1 = nn.Linear(n, hidden)
            self.fc2 = nn.Linear(hidden, n)
        self.build_perceptrons(C, O, fc3_groups, bn_per_position=True, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        check_size(x, self.size, type(self).__name__)
        B, channels_last = x.shape[0], is_channels_last(x)
        (hp, wp), (h, w) = self.parts, self.partition
        C, O = self.channels, self.out_channels
        x = x.reshape(B, C, hp, h, wp, w)
        if self.has_global:
            v = self.gp_bn(F.avg_pool2d(x.reshape(B, C, hp * h, wp * w), (h, w))).flatten(1)
            v = self.fc2(F.relu(self.fc1(v)))
            x = x + v.reshape(B, C, hp, 1, wp, 1)
        out = self.partition_perceptron(x.permute(0, 2, 4, 1, 3, 5))        # partitions (B, hp, wp, C, h, w)
        out = out.reshape(B, hp, wp, O, h, w)
        if channels_last:  # the one copy writes the input's layout: (B, hp, h, wp, w, O), viewed (B, O, H, W)
            return out.permute(0, 1, 4, 2, 5, 3).reshape(B, hp * h, wp * w, O).permute(0, 3, 1, 2)
        return out.permute(0, 3, 1, 4, 2, 5).reshape(B, O, hp * h, wp * w)     # (B, O, hp, h, wp, w)

    def drop_training_parts(self) -> None:
        """Besides FC3's fold: the BN after the global perceptron's pooling folds into FC1."""
        super().drop_training_parts()
        if self.has_global:
            g, fc1 = self.gp_bn, self.fc1
            if not isinstance(fc1, nn.Linear):
                raise TypeError(f"{type(self).__name__}: fc1 must be an nn.Linear to take the folded BatchNorm, got "
                                f"{type(fc1).__module__}.{type(fc1).__qualname__} (fold before quantizing)")
            w, b = fc1.weight, fc1.bias
            acc = torch.promote_types(w.dtype, torch.float32)   # (in float32 at least, rounded once)
            scale, shift = fuse_conv_bn_weights(torch.ones_like(g.running_var, dtype=acc), None, g)  # x * scale + shift
            rep = self.parts[0] * self.parts[1]
            scale, shift = scale.repeat_interleave(rep), shift.repeat_interleave(rep)
            # a new layer (a pruned or parametrized fc1's weight is recomputed at each call: no write would last)
            folded = nn.Linear(fc1.in_features, fc1.out_features, device=w.device, dtype=w.dtype)
            folded.weight.copy_(w.to(acc) * scale)
            folded.bias.copy_(b.to(acc) + w.to(acc) @ shift)
            self.fc1 = folded.train(fc1.training).requires_grad_(any(p.requires_grad for p in fc1.parameters()))  # frozen stays so
            self.gp_bn = nn.Identity()
