"""Tests of :mod:`visionblocks.models.sknet`."""
from visionblocks.blocks.conv.selective_kernel_conv import SelectiveKernelConv

from _reference import _bottlenecks, _meta


def test_sk_resnet50_is_resnext50_with_sk_units():
    blocks = _bottlenecks(_meta("sk_resnet50"))
    assert len(blocks) == 16
    widths = []
    for b in blocks:
        sk = b.conv2
        assert isinstance(sk, SelectiveKernelConv) and len(sk.branches) == 2
        assert [br.conv.dilation for br in sk.branches] == [(1, 1), (2, 2)]
        assert all(br.conv.groups == 32 for br in sk.branches)
        assert sk.fuse.conv.out_channels == max(sk.out_channels // 16, 32)
        assert b.conv1.conv.stride == (1, 1)  # the stride is on the SK convolution
        widths.append(sk.out_channels)
    assert widths == [128] * 3 + [256] * 4 + [512] * 6 + [1024] * 3
    assert [b.conv2.branches[0].conv.stride[0] for b in blocks if b.conv2.branches[0].conv.stride[0] > 1] == [2, 2, 2]
