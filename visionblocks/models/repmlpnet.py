"""RepMLPNet (Ding et al., RepMLPNet: Hierarchical Vision MLP with Re-parameterized Locality, CVPR 2022,
arXiv 2112.11081).

A RepMLPNet block on a (C, H, W) map cut into (h, w) partitions, with the C channels in ``S`` share-sets::

    Global Perceptron:   g = sigmoid(FC(ReLU(FC(avgpool(x)))))               # C -> C/4 -> C, per channel
    Channel Perceptron:  P = BN(FC3_s(x_partition))     # one (h*w x h*w) FC per share-set, shared by its channels
    Local Perceptron:    L = sum_k BN(DWConv_k(x_partition))                  # k in (1, 3), per share-set
    output = (P + L) * g

and a unit is ``y = x + Block(BN(x))``, ``z = y + FFN(BN(y))`` (FFN: 1x1 conv-BN, GELU, 1x1 conv-BN, ratio 4).
"Locality Injection" (:meth:`RepMLPNetBlock.reparameterize`) folds the conv branches and the BN into FC3.
RepMLPNet-T224: channels (64, 128, 256, 512), blocks (2, 2, 6, 2), partitions = the stage sizes
(56, 28, 14, 7), share-sets (1, 4, 16, 128); 4x4 conv-BN-ReLU embedding, 2x2 conv-BN-ReLU merging, BN,
average pooling, linear head.  Paper (Table 4): 38.3M params, 2.8 GFLOPs at 224.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.blocks.reparam._repmlp import conv_as_fc, fold_local_perceptron, local_perceptron
from visionblocks.layers import ConvNormAct, DropPath, check_divisible, fuse_conv_bn_weights, spatial_mean
from visionblocks.registry import register_model

from ._base import ClassifierHead, ModelBase

_PAPER = "Ding et al., RepMLPNet: Hierarchical Vision MLP with Re-parameterized Locality, CVPR 2022"
_URL = "https://arxiv.org/abs/2112.11081"


class RepMLPNetBlock(nn.Module):
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
        super().__init__()
        check_divisible("channels", channels, "num_sharesets", num_sharesets)
        self.channels, self.partition, self.sets = channels, tuple(partition), num_sharesets
        self.reparam_conv_k = tuple(reparam_conv_k or ())
        self.is_reparameterized = bool(deploy)
        h, w = self.partition
        self.gp_fc1 = nn.Conv2d(channels, channels // gp_reduction, 1)
        self.gp_fc2 = nn.Conv2d(channels // gp_reduction, channels, 1)
        s = num_sharesets
        self.fc3 = nn.Conv2d(s * h * w, s * h * w, 1, groups=s, bias=deploy)
        self.fc3_bn = nn.Identity() if deploy else nn.BatchNorm2d(s)
        self.local = local_perceptron(s, s, () if deploy else self.reparam_conv_k, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        (h, w), s = self.partition, self.sets
        hp, wp = H // h, W // w
        g = torch.sigmoid(self.gp_fc2(F.relu(self.gp_fc1(spatial_mean(x, keepdim=True)))))
        parts = x.reshape(B, C, hp, h, wp, w).permute(0, 2, 4, 1, 3, 5)       # (B, hp, wp, C, h, w)
        out = self.fc3_bn(self.fc3(parts.reshape(-1, s * h * w, 1, 1)).reshape(-1, s, h, w))
        if len(self.local):
            conv_in = parts.reshape(-1, s, h, w)
            for branch in self.local.values():
                out = out + branch(conv_in)
        out = out.reshape(B, hp, wp, C, h, w).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)
        return out * g

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Locality injection: fold the conv branches and the BNs into FC3 (eval mode only; idempotent)."""
        if self.is_reparameterized:
            return
        if self.training:
            raise RuntimeError(f"{type(self).__name__}.reparameterize() needs eval mode (call .eval() first)")
        (h, w), s = self.partition, self.sets
        bn = self.fc3_bn
        weight, bias = fuse_conv_bn_weights(self.fc3.weight.reshape(s, -1), None, bn)   # one BN channel per set
        weight, bias = weight.reshape(self.fc3.weight.shape), bias.repeat_interleave(h * w)
        if len(self.local):
            kernel, kbias = fold_local_perceptron(self.local, max(self.reparam_conv_k))
            weight = weight + conv_as_fc(kernel, s, (h, w))
            bias = bias + kbias.repeat_interleave(h * w)
        fc3 = nn.Conv2d(s * h * w, s * h * w, 1, groups=s, bias=True, device=weight.device, dtype=weight.dtype)
        fc3.weight.copy_(weight)
        fc3.bias.copy_(bias)
        self.fc3, self.fc3_bn, self.local = fc3, nn.Identity(), nn.ModuleDict()
        self.is_reparameterized = True


class RepMLPNetUnit(nn.Module):
    """``y = x + RepMLPNetBlock(BN(x))``; ``z = y + FFN(BN(y))``."""

    def __init__(self, channels: int, partition, num_sharesets: int, reparam_conv_k=(1, 3), ffn_ratio: int = 4,
                 drop_path: float = 0.0, deploy: bool = False):
        super().__init__()
        self.prebn1 = nn.BatchNorm2d(channels)
        self.block = RepMLPNetBlock(channels, partition, num_sharesets, reparam_conv_k, deploy=deploy)
        self.prebn2 = nn.BatchNorm2d(channels)
        self.ffn = nn.Sequential(ConvNormAct(channels, channels * ffn_ratio, 1, act_layer="gelu"),
                                 ConvNormAct(channels * ffn_ratio, channels, 1, act_layer=None))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.block(self.prebn1(x)))
        return x + self.drop_path(self.ffn(self.prebn2(x)))


class RepMLPNet(ModelBase):
    """Hierarchical RepMLPNet; inputs must make every stage a multiple of its partition size."""

    def __init__(self, channels=(64, 128, 256, 512), blocks=(2, 2, 6, 2), partitions=(56, 28, 14, 7),
                 sharesets=(1, 4, 16, 128), reparam_conv_k=(1, 3), patch_size: int = 4, num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.partitions = tuple(partitions)
        total, k = sum(blocks), 0
        layers = [ConvNormAct(in_chans, channels[0], patch_size, patch_size, padding=0)]
        for i, n in enumerate(blocks):
            if i > 0:
                layers.append(ConvNormAct(channels[i - 1], channels[i], 2, 2, padding=0))
            for _ in range(n):
                layers.append(RepMLPNetUnit(channels[i], (partitions[i], partitions[i]), sharesets[i], reparam_conv_k,
                                            drop_path=drop_path_rate * k / max(1, total - 1), deploy=deploy))
                k += 1
        self.features = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(channels[-1])
        self.head = ClassifierHead(channels[-1], num_classes, drop_rate)
        self.num_features = channels[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        unit = self.patch_size * self.partitions[0]
        if x.shape[-2] % unit or x.shape[-1] % unit:
            raise ValueError(f"{type(self).__name__} needs an input size that is a multiple of {unit} (its FCs are "
                             f"tied to the {self.partitions} partitions); got input of shape {tuple(x.shape)}")
        return self.norm(self.features(x))


@register_model("repmlpnet_t224", paper=_PAPER, url=_URL, paper_params=38.3, paper_macs=2.8, family="mlp")
def repmlpnet_t224(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> RepMLPNet:
    """RepMLPNet-T224: 38.3M params, 2.8 GFLOPs at 224 (paper Table 4)."""
    return RepMLPNet((64, 128, 256, 512), (2, 2, 6, 2), (56, 28, 14, 7), (1, 4, 16, 128), (1, 3),
                     num_classes=num_classes, in_chans=in_chans, **kwargs)
