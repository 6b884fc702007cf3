"""Tests of :mod:`visionblocks.blocks.conv.coconv`."""
import pytest
import torch
import torch.nn.functional as F

from visionblocks.blocks.conv.coconv import CoConv, coconv_splits
from visionblocks.models.coresnet import CoBottleneck
from visionblocks.testing import randomize_bn_stats

from _reference import bn_eval


D = torch.float64
def zero_inserted(w, d):
    """(O, I, K, K) kernel -> (O, I, d(K-1)+1, d(K-1)+1) with d-1 zeros between the taps."""
    k = w.shape[-1]
    big = w.new_zeros(*w.shape[:2], d * (k - 1) + 1, d * (k - 1) + 1)
    big[:, :, ::d, ::d] = w
    return big
@pytest.mark.parametrize("levels,stride,size", [(4, 1, (12, 10)), (3, 2, (13, 11)), (2, 2, (9, 16)), (1, 1, (5, 5))])
def test_levels_are_zero_inserted_convolutions(levels, stride, size):
    torch.manual_seed(0)
    m = CoConv(8, 16, 3, stride, levels=levels).to(D)
    x = torch.randn(2, 8, *size, dtype=D)
    refs = []
    for conv, d in zip(m.levels, range(1, levels + 1)):
        big = zero_inserted(conv.weight, d)
        refs.append(F.conv2d(x, big, stride=stride, padding=big.shape[-1] // 2))
    y = m(x)
    assert y.shape == (2, 16, -(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(y, torch.cat(refs, 1), rtol=1e-10, atol=1e-10)
def test_paper_channel_shares_and_params():
    assert coconv_splits(64, 4) == [16, 16, 16, 16]
    assert coconv_splits(64, 3) == [32, 16, 16]
    assert coconv_splits(64, 2) == [32, 32]
    assert coconv_splits(64, 5) == [16, 16, 16, 8, 8]
    for levels in (1, 2, 3, 4, 5):
        m = CoConv(32, 64, 3, levels=levels)
        assert sum(p.numel() for p in m.parameters()) == 32 * 64 * 9     # same as the plain 3x3 convolution
        assert [c.dilation[0] for c in m.levels] == list(range(1, levels + 1))
def test_validation():
    with pytest.raises(ValueError, match="divisible by 4"):
        CoConv(8, 18, levels=4)
    with pytest.raises(ValueError, match="sum"):
        CoConv(8, 16, levels=2, out_splits=[8, 4])


def test_coconv_bottleneck_bn_after_addition():
    torch.manual_seed(0)
    blk = CoBottleneck(64, 16, stride=2, stride_3x3=True, bn_after_add=True).double()
    randomize_bn_stats(blk, seed=5)
    blk.eval()
    x = torch.randn(2, 64, 9, 9, dtype=torch.float64)
    c3, bn = blk.conv3.conv, blk.conv3.bn
    y = F.conv2d(blk.conv2(blk.conv1(x)), c3.weight) + blk.shortcut(x)
    ref = F.relu(bn_eval(y, bn))
    torch.testing.assert_close(blk(x), ref, rtol=1e-10, atol=1e-10)
