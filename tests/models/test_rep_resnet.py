"""Tests of :mod:`visionblocks.models.rep_resnet`."""
from __future__ import annotations

from _reference import _rep_blocks, _rep_models


BLOCKS = _rep_blocks()
MODELS = _rep_models()
def test_something_is_covered():
    assert {"repvgg_block", "acnet_block", "diverse_branch_block"} <= set(BLOCKS)
    assert {"repvgg_a0", "acnet_resnet18", "dbb_resnet18"} <= set(MODELS)
