"""Tests of :mod:`visionblocks.models.epsanet`."""
import torch

from visionblocks.blocks.attention.pyramid_split_attention import PyramidSplitAttention

from _reference import _bottlenecks, _meta


def test_epsanet50_small_uses_psa_with_paper_groups():
    blocks = _bottlenecks(_meta("epsanet50_small"))
    for b in blocks:
        psa = b.conv2.op
        assert isinstance(psa, PyramidSplitAttention)
        assert [(c.kernel_size[0], c.groups) for c in psa.convs] == [(3, 1), (5, 4), (7, 8), (9, 16)]
        assert isinstance(b.conv2.bn, torch.nn.BatchNorm2d)
    assert sum(b.conv2.op.convs[0].stride[0] == 2 for b in blocks) == 3
