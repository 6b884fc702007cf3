"""Tests that name no single block or model (kept together by scripts/mirror_tests.py)."""
from __future__ import annotations

import pytest
import torch

from visionblocks.blocks.reparam import ACBlock, DiverseBranchBlock, RepVGGBlock


@pytest.mark.parametrize("cls", [RepVGGBlock, ACBlock, DiverseBranchBlock])
def test_hyper_parameter_validation(cls):
    with pytest.raises(ValueError, match=r"in_channels \(6\) must be divisible by groups \(4\)"):
        cls(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match=r"out_channels \(6\) must be divisible by groups \(4\)"):
        cls(8, 6, 3, groups=4)
    with pytest.raises(ValueError, match="odd"):
        cls(8, 8, 4)
    with pytest.raises(ValueError, match="stride"):
        cls(8, 8, 3, stride=0)
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 8, H, W\), got \(2, 7, 5, 5\)"):
        cls(8, 8, 3)(torch.randn(2, 7, 5, 5))
