"""Tests of :mod:`visionblocks.layers.checks`."""
import pytest

from visionblocks.layers import check_odd


def test_check_odd_returns_odd_values_and_names_the_even_ones():
    for v in (1, 3, 7, -1):
        assert check_odd("kernel_size", v) == v
    with pytest.raises(ValueError, match=r"^kernel_size must be odd, got 4$"):
        check_odd("kernel_size", 4)
    with pytest.raises(ValueError, match=r"^kernel_size must be odd \(same padding\), got 0$"):
        check_odd("kernel_size", 0, "same padding")
