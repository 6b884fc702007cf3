"""The shared helpers that lay out a backbone's stages: ``stride_or_dilate`` (DeepLab's output_stride) and
``FeaturePlan`` (feature_info / feature_plan of a flat sequence of blocks)."""
import pytest

from visionblocks.features import FeaturePlan
from visionblocks.layers import stride_or_dilate


def _schedule(strides, output_stride, net_stride=2):
    dilation, out = 1, []
    for s in strides:
        s, dilation, net_stride = stride_or_dilate(net_stride, s, dilation, output_stride)
        out.append((s, dilation, net_stride))
    return out


def test_stride_or_dilate_follows_deeplab():
    # MobileNetV2's stage strides after its stride-2 stem: 1, 2, 2, 2, 1, 2, 1
    strides = (1, 2, 2, 2, 1, 2, 1)
    assert _schedule(strides, 32) == [(1, 1, 2), (2, 1, 4), (2, 1, 8), (2, 1, 16), (1, 1, 16), (2, 1, 32),
                                      (1, 1, 32)]
    assert _schedule(strides, 16) == [(1, 1, 2), (2, 1, 4), (2, 1, 8), (2, 1, 16), (1, 1, 16), (1, 2, 16),
                                      (1, 2, 16)]
    assert _schedule(strides, 8) == [(1, 1, 2), (2, 1, 4), (2, 1, 8), (1, 2, 8), (1, 2, 8), (1, 4, 8),
                                     (1, 4, 8)]


def test_feature_plan_groups_steps_per_resolution():
    plan = FeaturePlan(["stem"])
    for i, end in enumerate((False, True, False, False, True)):
        plan.add(f"blocks.{i}")
        if end:
            plan.end_feature(num_chs=8 * (i + 1), reduction=2 ** (i + 1))
    assert plan.feature_plan == [["stem", "blocks.0", "blocks.1"], ["blocks.2", "blocks.3", "blocks.4"]]
    info = plan.feature_info()
    assert info.channels() == [16, 40] and info.reduction() == [4, 32]
    assert info.module_name() == ["blocks.1", "blocks.4"]
    with pytest.raises(ValueError, match="no step"):
        plan.end_feature(num_chs=40, reduction=32)
