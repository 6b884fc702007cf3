"""Tests of :mod:`visionblocks.models.resnest`."""
import torch.nn as nn

from visionblocks.blocks.conv.split_attention_conv import SplitAttentionConv

from _reference import _meta_conv_variant_models


def test_resnest50_layout():
    m = _meta_conv_variant_models("resnest50")
    assert [blk.conv.out_channels for blk in m.stem[:3]] == [32, 32, 64]        # deep stem 32-32-64
    for s, stage in enumerate(m.stages):
        for i, blk in enumerate(stage):
            if i == 0 and s > 0:   # avd: split attention at stride 1, then a 3x3 average pooling with the stride
                splat_conv = next(c for c in blk.conv2[0].modules() if isinstance(c, nn.Conv2d))
                assert isinstance(blk.conv2[0], SplitAttentionConv) and splat_conv.stride == (1, 1)
                assert isinstance(blk.conv2[1], nn.AvgPool2d) and blk.conv2[1].stride == 2
                assert isinstance(blk.shortcut[0], nn.AvgPool2d)                   # avg_down shortcut
            else:
                assert isinstance(blk.conv2, SplitAttentionConv) and blk.conv2.radix == 2
