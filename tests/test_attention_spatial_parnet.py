"""ParNet (Goyal et al., arXiv 2110.07641): downsampling/fusion blocks against their equations, exact
re-parameterization, and the paper's parameter/FLOP figures, which count the folded network."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.reparam.repvgg_sse_block import PooledConvBN, RepConv3x3
from visionblocks.models.parnet import PAPER_FIGURES, ParNet, ParNetDownsample, ParNetFusion
from visionblocks.testing import count_macs, randomize_bn_stats

from _reference import bn_eval as _bn


def _prep(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    randomize_bn_stats(m, seed=seed + 1)
    return m.double().eval()


@pytest.mark.parametrize("size", [(8, 10), (7, 9)])
def test_downsample_block_matches_equations(size):
    """SiLU((BN(conv3x3_s2 x) + BN(conv1x1(avgpool2x2 x))) * 2 sigmoid(W GAP(x))), then channel shuffle."""
    m = _prep(ParNetDownsample(8, 12, stride=2, groups=2))
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    c3, c1 = m.conv.body.conv3x3, m.conv.body.conv1x1
    b3 = _bn(F.conv2d(x, c3.conv.weight, stride=2, padding=1, groups=2), c3.bn)
    H, W = size
    xp = torch.zeros(2, 8, H + H % 2, W + W % 2, dtype=torch.float64)   # zero-padded to even size
    xp[:, :, :H, :W] = x
    pooled = (xp[:, :, 0::2, 0::2] + xp[:, :, 1::2, 0::2] + xp[:, :, 0::2, 1::2] + xp[:, :, 1::2, 1::2]) / 4
    b1 = _bn(F.conv2d(pooled, c1.conv.weight, groups=2), c1.bn)
    gate = 2 * torch.sigmoid(F.conv2d(x.mean((2, 3), keepdim=True), m.se_fc.weight, groups=2))
    y = F.silu((b3 + b1) * gate)
    shuffled = torch.stack([y[:, :6], y[:, 6:]], dim=2).flatten(1, 2)   # channels g0_0, g1_0, g0_1, ...
    torch.testing.assert_close(m(x), shuffled, rtol=1e-10, atol=1e-12)


def test_fusion_interleaves_the_two_streams():
    m = _prep(ParNetFusion(4, 6, stride=1))
    a, b = torch.randn(2, 4, 5, 5, dtype=torch.float64), torch.randn(2, 4, 5, 5, dtype=torch.float64)
    seen = {}
    h = m.block.register_forward_pre_hook(lambda mod, inp: seen.update(x=inp[0]))
    m(a, b)
    h.remove()
    x = seen["x"]
    torch.testing.assert_close(x[:, 0::2], _bn(a, m.bn_a))
    torch.testing.assert_close(x[:, 1::2], _bn(b, m.bn_b))


@pytest.mark.parametrize("stride,groups,size", [(1, 1, (6, 7)), (2, 1, (7, 9)), (2, 2, (8, 8))])
def test_repconv_folds_exactly(stride, groups, size):
    m = _prep(RepConv3x3(6, 8, stride, groups))
    x = torch.randn(2, 6, *size, dtype=torch.float64)
    ref = m(x)
    m.reparameterize()
    m.reparameterize()  # idempotent
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(RuntimeError):
        RepConv3x3(6, 8, stride, groups).train().reparameterize()


@pytest.mark.parametrize("k", [3, 5])
def test_pooled_branch_kernel_is_the_corner_of_a_strided_window(k):
    """BN(conv1x1(avgpool2x2 x)) == a stride-2, padding-k//2 kxk conv with BN-scaled w/4 on the 2x2 block at
    offset (k//2, k//2), at even and odd sizes."""
    m = _prep(PooledConvBN(4, 6, groups=2))
    w, b = m.kernel_bias(k)
    scale = m.bn.weight / (m.bn.running_var + m.bn.eps).sqrt()
    corner = torch.zeros_like(w)
    corner[:, :, k // 2:k // 2 + 2, k // 2:k // 2 + 2] = scale[:, None, None, None] * m.conv.weight / 4
    torch.testing.assert_close(w, corner, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(b, m.bn.bias - m.bn.running_mean * scale, rtol=1e-12, atol=1e-14)
    for H, W in [(7, 9), (8, 8)]:
        x = torch.randn(2, 4, H, W, dtype=torch.float64)
        xp = torch.zeros(2, 4, H + H % 2, W + W % 2, dtype=torch.float64)   # zero-padded to even size
        xp[:, :, :H, :W] = x
        pooled = (xp[:, :, 0::2, 0::2] + xp[:, :, 1::2, 0::2] + xp[:, :, 0::2, 1::2] + xp[:, :, 1::2, 1::2]) / 4
        ref = _bn(F.conv2d(pooled, m.conv.weight, groups=2), m.bn)
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(F.conv2d(x, w, b, stride=2, padding=k // 2, groups=2), ref, rtol=1e-10, atol=1e-12)


def test_parnet_reparameterize_keeps_output_and_loads_into_deploy_model():
    """A narrow ParNet (same topology as ParNet-S, small widths to keep the test fast), odd input size."""
    m = _prep(ParNet((16, 32, 64), 96, num_classes=10))
    x = torch.randn(2, 3, 35, 50, dtype=torch.float64)
    with torch.no_grad():
        ref = m(x)
        vb.reparameterize(m)
        assert not any(isinstance(t, RepConv3x3) and not t.is_reparameterized for t in m.modules())
        torch.testing.assert_close(m(x), ref, rtol=1e-8, atol=1e-8)
        fresh = ParNet((16, 32, 64), 96, num_classes=10, deploy=True).double().eval()
        fresh.load_state_dict(m.state_dict())
        torch.testing.assert_close(fresh(x), ref, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", sorted(PAPER_FIGURES))
def test_folded_parnet_matches_paper_figures(name):
    """The paper counts the folded network, FLOPs = 2 x multiply-adds."""
    params, macs = count_macs(name, deploy=True)
    paper_params, paper_gflops = PAPER_FIGURES[name]
    assert abs(params / 1e6 - paper_params) <= 0.01 * paper_params, (name, params / 1e6, paper_params)
    assert abs(2 * macs / 1e9 - paper_gflops) <= 0.01 * paper_gflops, (name, 2 * macs / 1e9, paper_gflops)
