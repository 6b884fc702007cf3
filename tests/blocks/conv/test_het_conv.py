"""Tests of :mod:`visionblocks.blocks.conv.het_conv`."""
import pytest
import torch
import torch.nn.functional as F

from visionblocks.blocks.conv.het_conv import HetConv


D = torch.float64
def dense_block_kernel(m):
    """(C_out, C_in, K, K) kernel: filter o of group g has K x K kernels on input block g and 1x1 elsewhere."""
    out, cin, p = m.out_channels, m.in_channels, m.part
    k = m.gwc.kernel_size[0]
    bi, bo = cin // p, out // p
    dense = torch.zeros(out, cin, k, k, dtype=D)
    for o in range(out):
        g = o // bo
        dense[o, g * bi:(g + 1) * bi] = m.gwc.weight[o]
        others = [i for i in range(cin) if not g * bi <= i < (g + 1) * bi]
        for n, i in enumerate(others):
            dense[o, i, k // 2, k // 2] = m.pwc_weight[o, n]
    return dense
@pytest.mark.parametrize("part,stride,size", [(4, 1, (10, 12)), (2, 2, (11, 9)), (8, 2, (7, 7))])
def test_equals_dense_heterogeneous_kernel(part, stride, size):
    torch.manual_seed(0)
    m = HetConv(16, 24, 3, stride, part=part).to(D)
    x = torch.randn(2, 16, *size, dtype=D)
    ref = F.conv2d(x, dense_block_kernel(m), stride=stride, padding=1)
    y = m(x)
    assert y.shape == (2, 24, -(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
def test_paper_shifted_layout_is_a_channel_permutation():
    """The paper's pattern (filter o has its K x K kernels on the input channels i with i = o mod P) is our block
    layout with the input channels reordered by residue and the filters likewise."""
    torch.manual_seed(0)
    p, cin, cout = 4, 16, 12
    m = HetConv(cin, cout, 3, part=p).to(D)
    bi, bo = cin // p, cout // p
    pin = torch.tensor([t * p + g for g in range(p) for t in range(bi)])    # block position -> original channel
    pout = torch.tensor([t * p + g for g in range(p) for t in range(bo)])
    shifted = torch.zeros(cout, cin, 3, 3, dtype=D)
    shifted[pout[:, None], pin[None, :]] = dense_block_kernel(m)
    ii, oo = torch.meshgrid(torch.arange(cin), torch.arange(cout), indexing="xy")
    has_3x3 = shifted.abs().sum((2, 3)) != shifted[:, :, 1, 1].abs()
    assert torch.equal(has_3x3, (ii % p) == (oo % p))       # the paper's shifted pattern
    x = torch.randn(2, cin, 9, 9, dtype=D)
    torch.testing.assert_close(m(x[:, pin])[:, torch.argsort(pout)],
                               F.conv2d(x, shifted, padding=1), rtol=1e-10, atol=1e-10)
def test_parameter_count_matches_paper_formula():
    m = HetConv(64, 32, 3, part=4)
    assert sum(p.numel() for p in m.parameters()) == (64 // 4 * 9 + 64 * (1 - 1 / 4)) * 32
def test_validation():
    with pytest.raises(ValueError, match="part"):
        HetConv(18, 16, part=4)
    with pytest.raises(ValueError, match="odd"):
        HetConv(16, 16, 4)
