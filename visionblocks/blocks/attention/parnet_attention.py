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

from visionblocks.layers import ConvNormAct, check_divisible, check_nchw, check_positive_int, create_act
from visionblocks.layers import fuse_conv_bn_weights, pad_kernel
from visionblocks.registry import Example, register_block


def _avg_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2/2 average pooling of ``x`` zero-padded at the bottom/right to even size (always / 4), so that it
    is exactly the 2x2 corner of a stride-2, padding-1 3x3 convolution at any size."""
    return F.avg_pool2d(F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2)), 2)


class RepConv3x3(nn.Module):
    """``BN(conv3x3_s(x)) + BN(conv1x1(pool_s(x)))`` -- ParNet's re-parameterizable convolution pair.

    At stride 2 the 1x1 branch sees a 2x2 average pool (ParNet's downsampling block).  ``reparameterize()``
    folds both branches and their BatchNorms into one 3x3 convolution with bias.

    Args:
        in_channels, out_channels: channels in and out (divisible by ``groups``).
        stride: 1 or 2.
        groups: groups of both convolutions.
        deploy: build the folded (inference) form directly.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, deploy: bool = False):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        check_divisible("in_channels", in_channels, "groups", groups)
        check_divisible("out_channels", out_channels, "groups", groups)
        self.in_channels, self.out_channels, self.stride, self.groups = in_channels, out_channels, stride, groups
        self.is_reparameterized = bool(deploy)
        if deploy:
            self.fused = nn.Conv2d(in_channels, out_channels, 3, stride, 1, groups=groups, bias=True)
        else:
            self.conv3x3 = ConvNormAct(in_channels, out_channels, 3, stride, groups=groups, act_layer=None)
            self.conv1x1 = ConvNormAct(in_channels, out_channels, 1, groups=groups, act_layer=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_reparameterized:
            return self.fused(x)
        return self.conv3x3(x) + self.conv1x1(_avg_pool_2x2(x) if self.stride == 2 else x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.is_reparameterized:
            return
        if self.training:
            raise RuntimeError("RepConv3x3.reparameterize() needs eval mode (BatchNorm running statistics)")
        w3, b3 = fuse_conv_bn_weights(self.conv3x3.conv.weight, None, self.conv3x3.bn)
        w1, b1 = fuse_conv_bn_weights(self.conv1x1.conv.weight, None, self.conv1x1.bn)
        if self.stride == 2:   # avg-pool 2x2 then 1x1 == a 2x2 kernel of w1 / 4 on the bottom-right of the 3x3
            w1 = F.pad(w1.expand(-1, -1, 2, 2) / 4, (1, 0, 1, 0))
        else:
            w1 = pad_kernel(w1, (3, 3))
        fused = nn.Conv2d(self.in_channels, self.out_channels, 3, self.stride, 1, groups=self.groups, bias=True,
                          device=w3.device, dtype=w3.dtype)
        fused.weight.copy_(w3 + w1)
        fused.bias.copy_(b3 + b1)
        del self.conv3x3, self.conv1x1
        self.fused = fused
        self.is_reparameterized = True


@register_block("parnet_attention", family="attention", layout="nchw",
                paper="Goyal et al., Non-deep Networks, NeurIPS 2022", url="https://arxiv.org/abs/2110.07641",
                example=Example(args=(64,), input_shape=(2, 64, 14, 14)))
class ParNetAttention(nn.Module):
    """RepVGG-SSE block: 3x3 conv-BN + 1x1 conv-BN + skip-squeeze-excitation, then SiLU.

    Args:
        channels: input (= output) channels C.
        act_layer: the final activation (paper: SiLU).
        deploy: build the inference form (the two convolutions folded into one 3x3 with bias).
    """

    def __init__(self, channels: int, act_layer="silu", deploy: bool = False):
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
        s = self.skip_bn(x)
        sse = s * torch.sigmoid(self.sse_fc(s.mean((2, 3), keepdim=True)))
        return self.act(self.conv(x) + sse)
