"""Tests of :mod:`visionblocks.blocks.conv.self_calibrated_conv`."""
import pytest
import torch
import torch.nn.functional as F

from visionblocks.blocks.conv.self_calibrated_conv import SelfCalibratedConv
from visionblocks.testing import randomize_bn_stats

from _reference import bn_eval, pool


D = torch.float64
def k_apply(unit, x):
    c, b = unit.conv, unit.bn
    y = F.conv2d(x, c.weight, stride=c.stride, padding=c.padding, groups=c.groups)
    return bn_eval(y, b)
def up_nearest(t, size):
    ii = torch.arange(size[0]) * t.shape[2] // size[0]      # floor(i * in / out)
    jj = torch.arange(size[1]) * t.shape[3] // size[1]
    return t[:, :, ii][:, :, :, jj]
def floor_pool(x, r):
    """The authors' AvgPool2d(r, r): the r x r blocks that fit (a partial border window is dropped)."""
    n, c, h, w = x.shape
    hh, ww = h // r, w // r
    return x[:, :, : hh * r, : ww * r].reshape(n, c, hh, r, ww, r).mean((3, 5))
def reference(m, x):
    x1, x2 = x[:, : x.shape[1] // 2], x[:, x.shape[1] // 2:]
    y1 = k_apply(m.k1, x1)
    r = m.pooling_r
    small = x2.shape[2] < r or x2.shape[3] < r       # only there: the partial window averages what it covers
    x2p = up_nearest(k_apply(m.k2, (pool if small else floor_pool)(x2, r)), x2.shape[2:])
    y2 = k_apply(m.k4, k_apply(m.k3, x2) * torch.sigmoid(x2 + x2p))
    return F.relu(torch.cat([y1, y2], 1))
@pytest.mark.parametrize("stride,size,groups", [(1, (16, 16), 1), (2, (16, 12), 1), (2, (13, 10), 2), (1, (3, 5), 1),
                                                (1, (14, 14), 1), (2, (14, 14), 1), (1, (7, 7), 1)])
def test_matches_paper_equations(stride, size, groups):
    torch.manual_seed(0)
    m = SelfCalibratedConv(16, 24, 3, stride, pooling_r=4, groups=groups).to(D)
    randomize_bn_stats(m, seed=2)
    m.eval()
    x = torch.randn(2, 16, *size, dtype=D)
    y = m(x)
    assert y.shape == (2, 24, -(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(y, reference(m, x), rtol=1e-10, atol=1e-10)
def test_pooling_is_the_authors_floor_mode_at_14x14():
    """SCNet-50's third stage runs at 14x14: AvgPool2d(4, 4) gives 3x3 (the last two rows/columns unused), so
    the output does not depend on them through the calibration branch (ceil mode would give 4x4)."""
    torch.manual_seed(0)
    m = SelfCalibratedConv(8, 8, 3, pooling_r=4).to(D).eval()
    seen = []
    m.k2.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[-2:]))
    x = torch.randn(1, 8, 14, 14, dtype=D)
    m(x)
    assert seen == [(3, 3)]
def test_parameter_count_is_four_half_width_convs():
    m = SelfCalibratedConv(64, 64, 3)
    convs = sum(p.numel() for n, p in m.named_parameters() if "conv" in n)
    assert convs == 4 * 32 * 32 * 9          # as a plain 3x3 convolution 64 -> 64
    with pytest.raises(ValueError, match="divisible"):
        SelfCalibratedConv(15, 16)
