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


@pytest.mark.parametrize("k,stride,size", [(3, 1, (5, 7)), (5, 2, (9, 6)), (7, 1, (4, 3)), (3, 3, (7, 8))])
def test_local_aggregate_channels_last_form_equals_unfold_weighted_sum(k, stride, size):
    """Positions first, (B, H, W, G, C/G) values with (B, Ho, Wo, G, 1, k*k) kernels: the same sums, with
    gradients (against the unfold reference on the NCHW-ordered tensors)."""
    b, g, cg = 2, 3, 4
    ho, wo = -(-size[0] // stride), -(-size[1] // stride)
    x = torch.randn(b, *size, g, cg, dtype=torch.float64, requires_grad=True)
    w = torch.randn(b, ho, wo, g, 1, k * k, dtype=torch.float64, requires_grad=True)
    got = local_aggregate(x, w, k, stride, channels_last=True)                       # (B, Ho, Wo, G, C/G)
    xn = x.permute(0, 3, 4, 1, 2).reshape(b, g * cg, *size)
    patches = F.unfold(xn, k, padding=k // 2, stride=stride).view(b, g, cg, k * k, ho, wo)
    want = (patches * w.permute(0, 3, 4, 5, 1, 2)).sum(3).permute(0, 3, 4, 1, 2)      # (B, Ho, Wo, G, C/G)
    torch.testing.assert_close(got, want)
    grad = torch.randn_like(want)
    torch.testing.assert_close(torch.autograd.grad(got, [x, w], grad), torch.autograd.grad(want, [x, w], grad))
