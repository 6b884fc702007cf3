"""Tests of :mod:`visionblocks.blocks.attention.bam`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _cna, _randomize, bn_eval as _bn


D = torch.float64
def test_bam_matches_paper_equations():
    m = _randomize(vb.create_block("bam", 64)).double()
    x = torch.randn(2, 64, 13, 10, dtype=D)
    cg, sg = m.channel_gate, m.spatial_gate
    s = x.mean((2, 3))                                                             # (B, C)
    w0, b0 = cg.mlp.fc1.weight[:, :, 0, 0], cg.mlp.fc1.bias
    w1, b1 = cg.mlp.fc2.weight[:, :, 0, 0], cg.mlp.fc2.bias
    mc = _bn(torch.relu(s @ w0.T + b0) @ w1.T + b1, cg.bn)[:, :, None, None]     # Eq. 2
    f = _cna(x, sg.body[0])
    for unit in sg.body[1:3]:
        assert unit.conv.dilation == (4, 4)
        f = _cna(f, unit, padding=4)
    ms = _bn(F.conv2d(f, sg.body[3].weight, sg.body[3].bias), sg.bn)            # Eq. 3, (B, 1, H, W)
    ref = x + x * torch.sigmoid(mc + ms)                                           # Eqs. 1, 4
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
@pytest.mark.parametrize("size", [(1, 1), (5, 3), (8, 8), (31, 17)])
def test_bam_keeps_any_size_and_batch_one_eval(size):
    m = vb.create_block("bam", 32).eval()
    x = torch.randn(1, 32, *size)
    with torch.no_grad():
        assert m(x).shape == x.shape


def _bn1(v, bn):
    """Eval BatchNorm over dim 1, written out."""
    sh = (1, -1) + (1,) * (v.ndim - 2)
    return (v - bn.running_mean.view(sh)) / torch.sqrt(bn.running_var.view(sh) + bn.eps) * bn.weight.view(sh) \
        + bn.bias.view(sh)


def _authors_maps(m, x):
    """The authors' code's branches written out: channel ``fc2(relu(BN(fc1(mean))))`` (BN on the hidden layer,
    biased linears), spatial ``conv1x1(relu(BN(conv3x3_d(...))))`` with biased convolutions, no final BN."""
    cg, sg = m.channel_gate, m.spatial_gate
    s = x.mean((2, 3))
    fc1, bn, fc2 = cg.mlp[0].conv, cg.mlp[0].bn, cg.mlp[1]
    mc = (torch.relu(_bn1(s @ fc1.weight[:, :, 0, 0].T + fc1.bias, bn)) @ fc2.weight[:, :, 0, 0].T + fc2.bias)
    f = x
    for i, unit in enumerate(sg.body[:3]):
        assert unit.conv.bias is not None
        pad, dil = (0, 1) if i == 0 else (4, 4)
        f = torch.relu(_bn1(F.conv2d(f, unit.conv.weight, unit.conv.bias, padding=pad, dilation=dil), unit.bn))
    ms = F.conv2d(f, sg.body[3].weight, sg.body[3].bias)
    return mc[:, :, None, None], ms


@pytest.mark.parametrize("combine", [None, "mul", "add"])
def test_bam_authors_layout_matches_their_formula(combine):
    m = _randomize(vb.create_block("bam", 64, layout="authors", combine=combine)).double()
    x = torch.randn(2, 64, 12, 12, dtype=D)
    mc, ms = _authors_maps(m, x)
    att = torch.sigmoid(mc + ms) if combine == "add" else torch.sigmoid(mc * ms)  # default: their product
    torch.testing.assert_close(m(x), (1 + att) * x, rtol=1e-10, atol=1e-10)      # their (1 + sigmoid) * F


def test_bam_paper_layout_with_product():
    m = _randomize(vb.create_block("bam", 32, combine="mul")).double()
    ref = _randomize(vb.create_block("bam", 32)).double()  # same seeds: same parameters, the paper's maps
    x = torch.randn(2, 32, 9, 7, dtype=D)
    mc = _bn1(ref.channel_gate.mlp.fc2(torch.relu(ref.channel_gate.mlp.fc1(x.mean((2, 3), keepdim=True)))),
              ref.channel_gate.bn)
    f = x
    for unit in ref.spatial_gate.body[:3]:
        f = torch.relu(_bn1(unit.conv(f), unit.bn))
    ms = _bn1(ref.spatial_gate.body[3](f), ref.spatial_gate.bn)
    torch.testing.assert_close(m(x), x + x * torch.sigmoid(mc * ms), rtol=1e-10, atol=1e-10)


def test_bam_authors_layout_parameters():
    # their BAM(64) at r = 16: Linear(64, 4) + BN1d(4) + Linear(4, 64); conv1x1(64, 4) + BN, 2 x (dilated
    # conv3x3(4, 4) + BN), conv1x1(4, 1), every conv biased
    c, r = 64, 4
    theirs = (c * r + r) + 2 * r + (r * c + c) + (c * r + r) + 2 * r + 2 * (9 * r * r + r + 2 * r) + (r + 1)
    m = vb.create_block("bam", c, layout="authors")
    assert sum(p.numel() for p in m.parameters()) == theirs == 1173
    paper = vb.create_block("bam", c)
    assert sum(p.numel() for p in paper.parameters()) == 1283  # unchanged default
    assert "channel_gate.bn.weight" in paper.state_dict() and "channel_gate.bn.weight" not in m.state_dict()


@pytest.mark.parametrize("kw", [{"layout": "timm"}, {"layout": 1}, {"combine": "max"}, {"combine": True}])
def test_bam_refuses_unknown_options(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        vb.create_block("bam", 32, **kw)
