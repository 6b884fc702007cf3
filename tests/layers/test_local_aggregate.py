"""Tests of :mod:`visionblocks.layers.local_aggregate`."""
import pytest
import torch
import torch.nn.functional as F

from visionblocks.layers import local_aggregate


@pytest.mark.parametrize("k,stride,size", [(3, 1, (5, 7)), (5, 2, (9, 6)), (7, 1, (4, 3)), (3, 3, (7, 8))])
def test_local_aggregate_equals_unfold_weighted_sum(k, stride, size):
    b, g, cg = 2, 3, 4
    x = torch.randn(b, g, cg, *size, dtype=torch.float64)
    ho, wo = -(-size[0] // stride), -(-size[1] // stride)
    w = torch.randn(b, g, 1, k * k, ho, wo, dtype=torch.float64)
    patches = F.unfold(x.view(b, g * cg, *size), k, padding=k // 2, stride=stride).view(b, g, cg, k * k, ho, wo)
    torch.testing.assert_close(local_aggregate(x, w, k, stride), (patches * w).sum(3))
