"""Tests of :mod:`visionblocks.models.coresnet`."""
from visionblocks.blocks.conv.coconv import CoConv
from visionblocks.testing import count_params

from _reference import _meta_conv_variant_models


RESNET50_PARAMS = 25_557_032
def test_coconv_resnet50_levels_and_end_of_stage_bn():
    m = _meta_conv_variant_models("coconv_resnet50")
    assert count_params(m) == RESNET50_PARAMS           # CoConv keeps the 3x3's parameters
    for stage, levels in zip(m.stages, (4, 3, 2, 1)):
        for i, blk in enumerate(stage):
            assert isinstance(blk.conv2.conv, CoConv) and len(blk.conv2.conv.levels) == levels
            assert blk.bn_after_add == (i == len(stage) - 1)
def test_coconv_resnet50_block_kwargs_merge_with_the_variants():
    every = _meta_conv_variant_models("coconv_resnet50", block_kwargs={"bn_after_add": True})  # the user's entries add to the variant's
    assert all(blk.bn_after_add for stage in every.stages for blk in stage)
    none = _meta_conv_variant_models("coconv_resnet50", last_block_kwargs={"bn_after_add": False})  # and win over them
    assert not any(blk.bn_after_add for stage in none.stages for blk in stage)
    assert all(isinstance(blk.conv2.conv, CoConv) for stage in none.stages for blk in stage)
