"""Tests of :mod:`visionblocks.models.res2net`."""
from visionblocks.blocks.conv.res2net_block import Res2NetBlock

from _reference import _meta_conv_variant_models


def test_res2net50_widths_and_stage_blocks():
    m = _meta_conv_variant_models("res2net50_26w_4s")
    for stage, width in zip(m.stages, (26, 52, 104, 208)):
        for i, blk in enumerate(stage):
            assert isinstance(blk, Res2NetBlock) and blk.width == width and blk.scale == 4
            assert blk.stage_type == ("stage" if i == 0 else "normal")
