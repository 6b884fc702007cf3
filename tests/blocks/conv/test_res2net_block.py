"""Tests of :mod:`visionblocks.blocks.conv.res2net_block`."""
import pytest
import torch
import torch.nn.functional as F

from visionblocks.blocks.conv.res2net_block import Res2NetBlock
from visionblocks.testing import randomize_bn_stats

from _reference import bn_eval


D = torch.float64
def cna(unit, x, act=True):
    c, b = unit.conv, unit.bn
    y = F.conv2d(x, c.weight, stride=c.stride, padding=c.padding, groups=c.groups)
    y = bn_eval(y, b)
    return F.relu(y) if act else y
def reference(m, x, stage):
    h = cna(m.conv1, x)
    w = m.width
    xs = [h[:, i * w:(i + 1) * w] for i in range(m.scale)]
    s = m.convs[0].conv.stride[0]
    ys = [F.avg_pool2d(xs[0], 3, s, 1) if stage else xs[0]]                 # y_1 = x_1 (pooled in stage blocks)
    for i in range(1, m.scale):
        inp = xs[i] if (i == 1 or stage) else xs[i] + ys[i - 1]             # y_i = K_i(x_i + y_{i-1})
        ys.append(cna(m.convs[i - 1], inp))
    out = cna(m.conv3, torch.cat(ys, 1), act=False)
    sc = x if isinstance(m.shortcut, torch.nn.Identity) else cna(m.shortcut, x, act=False)
    return F.relu(out + sc)
@pytest.mark.parametrize("cin,cout,stride,size,scale", [(64, 64, 1, (9, 8), 4), (32, 64, 2, (11, 10), 4),
                                                         (64, 128, 1, (6, 7), 3), (128, 128, 1, (5, 5), 6)])
def test_matches_paper_hierarchy(cin, cout, stride, size, scale):
    torch.manual_seed(0)
    m = Res2NetBlock(cin, cout, 3, stride, base_width=26, scale=scale).to(D)
    randomize_bn_stats(m, seed=4)
    m.eval()
    stage = stride > 1 or cin != cout
    assert m.stage_type == ("stage" if stage else "normal")
    x = torch.randn(2, cin, *size, dtype=D)
    y = m(x)
    assert y.shape == (2, cout, -(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(y, reference(m, x, stage), rtol=1e-10, atol=1e-10)
def test_identity_kernels_give_cumulative_sums():
    """With identity 1x1/3x3 kernels, identity BN and no activation the splits become y_1 = x_1, y_2 = x_2,
    y_i = x_i + y_{i-1}: cumulative sums from the second split on (the receptive field grows split by split)."""
    m = Res2NetBlock(64, 64, base_width=64, scale=4, act_layer=None).to(D).eval()   # width 16, 4 splits
    with torch.no_grad():
        m.conv1.conv.weight.copy_(torch.eye(64, dtype=D).view(64, 64, 1, 1))
        for c in m.convs:
            c.conv.weight.zero_()
            c.conv.weight[torch.arange(16), torch.arange(16), 1, 1] = 1.0
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.eps = 0.0                                   # running stats (0, 1): exactly the identity
    seen = {}
    m.conv3.register_forward_pre_hook(lambda mod, inp: seen.setdefault("cat", inp[0]))
    x = torch.randn(1, 64, 5, 5, dtype=D)
    m(x)
    xs = x.split(16, 1)
    expected = torch.cat([xs[0], xs[1], xs[1] + xs[2], xs[1] + xs[2] + xs[3]], 1)
    torch.testing.assert_close(seen["cat"], expected, rtol=1e-12, atol=1e-12)
def test_width_and_validation():
    assert Res2NetBlock(256, 256, base_width=26, scale=4).width == 26          # floor(64 * 26 / 64)
    assert Res2NetBlock(1024, 2048, stride=2, base_width=26, scale=4).width == 208
    with pytest.raises(ValueError, match="expansion"):
        Res2NetBlock(64, 66)
    with pytest.raises(ValueError, match="normal"):
        Res2NetBlock(64, 64, stride=2, stage_type="normal")
