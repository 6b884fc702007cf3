"""Tests of :mod:`visionblocks.layers.fuse`."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import fuse_conv_bn, identity_kernel, pad_kernel
from visionblocks.testing import randomize_bn_stats


def test_fuse_conv_bn_is_exact_in_float64():
    conv = nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2, bias=True).double()
    bn = randomize_bn_stats(nn.BatchNorm2d(8)).double().eval()
    x = torch.randn(2, 6, 11, 9, dtype=torch.float64)
    torch.testing.assert_close(fuse_conv_bn(conv, bn)(x), bn(conv(x)), rtol=1e-12, atol=1e-12)
def test_pad_and_identity_kernels():
    w = torch.randn(4, 2, 1, 1, dtype=torch.float64)
    x = torch.randn(1, 4, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(F.conv2d(x, pad_kernel(w, (3, 3)), padding=1, groups=2), F.conv2d(x, w, groups=2))
    for groups in (1, 2, 4):
        k = identity_kernel(4, groups, (3, 3), dtype=torch.float64)
        torch.testing.assert_close(F.conv2d(x, k, padding=1, groups=groups), x)
    with pytest.raises(ValueError, match="cannot centre"):
        pad_kernel(torch.randn(1, 1, 2, 2), (3, 3))
