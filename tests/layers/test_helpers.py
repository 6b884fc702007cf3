"""Tests of :mod:`visionblocks.layers.helpers`."""
from visionblocks.layers import make_divisible


def test_make_divisible():
    assert make_divisible(32 * 0.75, 8) == 24
    assert make_divisible(10, 8) == 16  # 8 would lose more than 10%
    assert make_divisible(3, 8) == 8
