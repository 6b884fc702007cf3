"""ParNet block, RepVGG-SSE (Goyal, Bochkovskiy, Deng & Koltun, Non-deep Networks, NeurIPS 2022,
arXiv 2110.07641).

Three parallel branches summed and passed through SiLU:
``y = SiLU(BN(conv3x3(x)) + BN(conv1x1(x)) + SSE(x))`` with the Skip-Squeeze-Excitation
``SSE(x) = BN(x) * sigmoid(W GAP(BN(x)))`` -- a squeeze-excitation with a single fully-connected layer
``W: C -> C`` (no bias, as in the authors' code) on the batch-normalised skip connection.

Like RepVGG, the two convolution branches fold into one 3x3 convolution with bias for inference
(``reparameterize()`` / ``deploy=True``); the SSE branch is kept (it is not linear).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (
    LayerType, check_nchw, check_odd, check_positive_int, create_act, dense_strides, fuse_conv_bn_weights,
    spatial_mean,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

from ._rep_conv import RepConvBase, conv_bn

__all__ = ["PooledConvBN", "RepConv3x3", "RepVGGSSEBlock"]


def _avg_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2/2 average pooling of ``x`` zero-padded at the bottom/right to even size (always / 4), so that it
    is exactly the 2x2 corner of a stride-2, padding-1 3x3 convolution at any size.  Padded by one row and column
    whatever the size (floor-mode pooling leaves the extra one out at an even size): no branch on the size's
    parity, which ``torch.export`` cannot resolve for a dynamic H, W (a zero pad copies ``x`` anyway)."""
    return F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2)


class PooledConvBN(nn.Module):
    """``BN(conv1x1(avgpool2x2(x)))``: ParNet's 1x1 branch at stride 2 (the pool does the downsampling).

    In eval mode it equals a stride-2 kxk convolution whose kernel is ``w / 4`` on the 2x2 corner at offset
    ``(k // 2, k // 2)`` -- the taps a padding-``k // 2`` window shares with the pooled 2x2 block
    (:meth:`kernel_bias`, which :func:`~visionblocks.blocks.reparam._rep_conv.branch_kernel_bias` calls).
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 1):
        super().__init__()
        self.groups = groups
        self.conv = nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(_avg_pool_2x2(x)))

    def kernel_bias(self, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        if kernel_size < 3:
            raise ValueError(f"a pooled 1x1 branch folds into a kernel_size >= 3, got {kernel_size}")
        c = check_odd("kernel_size", kernel_size, "the window is centred") // 2
        w, b = fuse_conv_bn_weights(self.conv.weight, None, self.bn)
        return F.pad(w.expand(-1, -1, 2, 2) / 4, (c, kernel_size - c - 2, c, kernel_size - c - 2)), b


class RepConv3x3(RepConvBase):
    """``BN(conv3x3_s(x)) + BN(conv1x1(pool_s(x)))`` -- ParNet's re-parameterizable convolution pair.

    At stride 2 the 1x1 branch sees a 2x2 average pool (ParNet's downsampling block, :class:`PooledConvBN`).
    ``reparameterize()`` folds both branches and their BatchNorms into one 3x3 convolution with bias
    (:class:`~visionblocks.blocks.reparam._rep_conv.RepConvBase`; no SE, no activation).

    Args:
        in_channels, out_channels: channels in and out (divisible by ``groups``).
        stride: 1 or 2.
        groups: groups of both convolutions.
        deploy: build the folded (inference) form directly.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, deploy: bool = False):
        super().__init__(in_channels, out_channels, 3, stride, groups, deploy=deploy)

    def validate(self) -> None:
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride}")

    def build_branches(self) -> dict[str, nn.Module]:
        cin, cout, g = self.in_channels, self.out_channels, self.groups
        conv3x3 = conv_bn(cin, cout, 3, self.stride, 1, g)
        conv1x1 = PooledConvBN(cin, cout, g) if self.stride == 2 else conv_bn(cin, cout, 1, 1, 0, g)
        return {"conv3x3": conv3x3, "conv1x1": conv1x1}


@register_block("repvgg_sse_block", family="reparam", layout="nchw", aliases=("parnet_attention",),
                paper="Goyal et al., Non-deep Networks, NeurIPS 2022", url="https://arxiv.org/abs/2110.07641",
                example=Example(args=(64,), input_shape=(2, 64, 14, 14)))
@validated(pooled_bn="the SSE branch's BatchNorm on globally pooled features")
class RepVGGSSEBlock(nn.Module):
    """RepVGG-SSE block: 3x3 conv-BN + 1x1 conv-BN + skip-squeeze-excitation, then SiLU.

    Args:
        channels: input (= output) channels C.
        act_layer: the final activation (paper: SiLU).
        deploy: build the inference form (the two convolutions folded into one 3x3 with bias).
    """

    def __init__(self, channels: int, act_layer: LayerType = "silu", deploy: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.conv = RepConv3x3(channels, channels, 1, deploy=deploy)
        self.skip_bn = nn.BatchNorm2d(channels)
        self.sse_fc = nn.Conv2d(channels, channels, 1, bias=False)
        self.act = create_act(act_layer, inplace=True)

    @property
    def is_reparameterized(self) -> bool:
        return self.conv.is_reparameterized

    def reparameterize(self) -> None:
        """Fold the 3x3 and 1x1 convolution branches (and their BatchNorms) into one 3x3 convolution."""
        self.conv.reparameterize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        x = dense_strides(x)  # (skip_bn normalises x as it comes: see layers.dense_strides)
        s = self.skip_bn(x)
        sse = s * torch.sigmoid(self.sse_fc(spatial_mean(s, keepdim=True)))
        return self.act(self.conv(x) + sse)
