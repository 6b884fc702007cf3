"""Tests of :mod:`visionblocks.blocks.attention.se`."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.reparam import ACBlock, DiverseBranchBlock, RepVGGBlock
from visionblocks.layers import SqueezeExcite
from visionblocks.models.coatnet import PreNormMBConv
from visionblocks.models.efficientnet import CondConvMBConv
from visionblocks.models.ghostnet import GhostBottleneck
from visionblocks.testing import randomize_bn_stats

from _reference import _random, bn_eval as _bn


def test_se_gate_equals_sigmoid_w2_relu_w1_avgpool():
    m = vb.create_block("se", 32).double()
    x = torch.randn(3, 32, 7, 5, dtype=torch.float64)
    W1, b1 = m.fc1.weight[:, :, 0, 0], m.fc1.bias
    W2, b2 = m.fc2.weight[:, :, 0, 0], m.fc2.bias
    assert W1.shape == (2, 32)  # C / r with r = 16
    z = x.sum((2, 3)) / 35.0
    gate = torch.sigmoid(torch.relu(z @ W1.T + b1) @ W2.T + b2)
    torch.testing.assert_close(m(x), x * gate[:, :, None, None], rtol=1e-12, atol=1e-12)


D = torch.float64
def test_ghost_bottleneck_matches_equations_with_se_and_stride():
    m = randomize_bn_stats(GhostBottleneck(8, 24, 12, 5, 2, attn_layer="se")).double().eval()
    x = torch.randn(2, 8, 9, 7, dtype=D)

    def ghost(t, gm, relu):
        a = lambda z: F.relu(z) if relu else z  # noqa: E731
        p = a(_bn(F.conv2d(t, gm.primary.conv.weight), gm.primary.bn))
        q = a(_bn(F.conv2d(p, gm.cheap.conv.weight, padding=1, groups=p.shape[1]), gm.cheap.bn))
        return torch.cat([p, q], 1)[:, :gm.out_channels]

    h = ghost(x, m.ghost1, True)
    h = _bn(F.conv2d(h, m.conv_dw.conv.weight, stride=2, padding=2, groups=24), m.conv_dw.bn)
    se = m.attn
    s = F.relu(F.conv2d(h.mean((2, 3), keepdim=True), se.fc1.weight, se.fc1.bias))
    h = h * F.hardsigmoid(F.conv2d(s, se.fc2.weight, se.fc2.bias))
    y = ghost(h, m.ghost2, False)
    sc = m.shortcut
    short = _bn(F.conv2d(_bn(F.conv2d(x, sc[0].conv.weight, stride=2, padding=2, groups=8), sc[0].bn),
                         sc[1].conv.weight), sc[1].bn)
    torch.testing.assert_close(m(x), y + short, rtol=1e-10, atol=1e-10)
    assert se.fc1.out_channels == 8  # make_divisible(24 / 4, 4)
@pytest.mark.parametrize("build, ratio, width", [
    (lambda **kw: GhostBottleneck(8, 40, 12, **kw), 0.25, 12),       # make_divisible(40 * 0.25, 4)
    (lambda **kw: CondConvMBConv(10, 10, num_experts=2, **kw), 0.25, 2),  # max(1, int(10 * 0.25))
    (lambda **kw: PreNormMBConv(10, 10, **kw), 0.25, 10),            # a quarter of the expanded 40
    (lambda **kw: PreNormMBConv(10, 10, **kw), 0.5, 20),
])
def test_deprecated_se_ratio_keeps_the_papers_se_width(build, ratio, width):
    with pytest.warns(DeprecationWarning, match="se_ratio"):
        m = build(se_ratio=ratio)
    se = m.mbconv.attn if hasattr(m, "mbconv") else m.attn
    assert isinstance(se, SqueezeExcite) and se.fc1.out_channels == width
    with pytest.warns(DeprecationWarning):
        m0 = build(se_ratio=0.0)
    assert isinstance(m0.mbconv.attn if hasattr(m0, "mbconv") else m0.attn, torch.nn.Identity)
    with pytest.raises(TypeError, match="se_ratio"), pytest.warns(DeprecationWarning):
        build(se_ratio=ratio, attn_layer="se")


CONFIGS = [  # (in, out, k, stride, groups, RepVGG's SE after the sum)
    (8, 8, 3, 1, 1, False),
    (8, 12, 3, 2, 2, True),
    (8, 8, 5, 1, 4, False),
    (6, 6, 3, 2, 6, False),   # depthwise
    (8, 8, 3, 1, 8, True),    # depthwise, stride 1
    (3, 16, 7, 2, 1, False),  # a ResNet stem
    (4, 6, 1, 2, 1, False),
]
def bn_ref(x, bn):
    """Eval BatchNorm by its formula."""
    s = lambda t: t.reshape(1, -1, 1, 1)  # noqa: E731
    return (x - s(bn.running_mean)) / torch.sqrt(s(bn.running_var) + bn.eps) * s(bn.weight) + s(bn.bias)
def se_ref(y, se: SqueezeExcite):
    """RepVGG's SE: y * sigmoid(W2 relu(W1 mean(y) + b1) + b2), C -> C/16 -> C."""
    s = y.mean((2, 3))
    h = torch.relu(s @ se.fc1.weight[:, :, 0, 0].T + se.fc1.bias)
    return y * torch.sigmoid(h @ se.fc2.weight[:, :, 0, 0].T + se.fc2.bias)[:, :, None, None]
def conv_bn_ref(x, unit, stride, padding, groups):
    return bn_ref(F.conv2d(x, unit.conv.weight, None, stride, padding, 1, groups), unit.bn)
def _finish(m, y):
    if m.use_se_ref:
        y = se_ref(y, m.se)
    return y
def repvgg_ref(m: RepVGGBlock, x):
    b, k, s, g = m.body, m.kernel_size, m.stride, m.groups
    y = conv_bn_ref(x, b["conv_kxk"], s, k // 2, g) + conv_bn_ref(x, b["conv_1x1"], s, 0, g)
    if m.in_channels == m.out_channels and s == 1:
        y = y + bn_ref(x, b["identity"])
    return torch.relu(_finish(m, y))
def acnet_ref(m: ACBlock, x):
    b, k, s, g = m.body, m.kernel_size, m.stride, m.groups
    p = k // 2
    y = (conv_bn_ref(x, b["square"], s, (p, p), g) + conv_bn_ref(x, b["ver"], s, (p, 0), g)
         + conv_bn_ref(x, b["hor"], s, (0, p), g))
    return _finish(m, y)
def dbb_ref(m: DiverseBranchBlock, x):
    """Paper Fig. 2: every branch a chain of linear ops on the zero-padded input, then BN."""
    b, k, s, g = m.body, m.kernel_size, m.stride, m.groups
    p = k // 2
    xp = F.pad(x, (p, p, p, p))
    y = conv_bn_ref(x, b["origin"], s, p, g)
    avg = b["avg"]
    if m.depthwise:
        y = y + bn_ref(F.avg_pool2d(xp, k, s), avg.bn)
    else:
        y = y + conv_bn_ref(x, b["conv_1x1"], s, 0, g)
        t = bn_ref(F.conv2d(xp, avg.pre.conv.weight, None, 1, 0, 1, g), avg.pre.bn.bn)
        y = y + bn_ref(F.avg_pool2d(t, k, s), avg.bn)
    br = b["conv_1x1_kxk"]
    w1 = br.conv1.weight
    if w1.shape[0] == m.in_channels:  # identity-based: I + W
        w1 = w1.clone()
        per = m.in_channels // g
        for c in range(m.in_channels):
            w1[c, c % per, 0, 0] += 1.0
    t = bn_ref(F.conv2d(xp, w1, None, 1, 0, 1, g), br.bn1.bn)
    y = y + bn_ref(F.conv2d(t, br.conv2.weight, None, s, 0, 1, g), br.bn2)
    return _finish(m, y)
REFS = {"repvgg_block": repvgg_ref, "acnet_block": acnet_ref, "diverse_branch_block": dbb_ref}
CFG_IDS = [f"{c[0]}-{c[1]}-k{c[2]}s{c[3]}g{c[4]}{'se' if c[5] else ''}" for c in CONFIGS]
@pytest.mark.parametrize("cfg", CONFIGS, ids=CFG_IDS)
@pytest.mark.parametrize("name", list(REFS))
def test_training_and_folded_forms_match_paper_reference(name, cfg):
    cin, cout, k, s, g, se = cfg
    torch.manual_seed(0)
    m = _random(vb.create_block(name, cin, cout, k, s, groups=g, attn_layer="se" if se else None).double())
    m.use_se_ref = se
    x = torch.randn(2, cin, 11, 14, dtype=torch.float64)
    with torch.no_grad():
        ref = REFS[name](m, x)
        got = m(x)
        assert got.shape == (2, cout, -(-11 // s), -(-14 // s))
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
        vb.reparameterize(m)
        assert isinstance(m.body, nn.Conv2d) and m.body.kernel_size == (k, k) and m.body.groups == g
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
def test_se_is_the_library_se_with_reduction_16():
    m = RepVGGBlock(64, 64, attn_layer="se")
    assert isinstance(m.se, SqueezeExcite) and m.se.fc1.out_channels == 4 and m.se.fc1.bias is not None
    assert isinstance(RepVGGBlock(64, 64).se, nn.Identity)
@pytest.mark.parametrize("cls", [RepVGGBlock, ACBlock, DiverseBranchBlock])
def test_attn_layer_and_the_deprecated_use_se(cls):
    """``use_se=True`` (RepVGG's flag) still builds the same SE, with a DeprecationWarning; any attention fits."""
    torch.manual_seed(0)
    new = cls(32, 32, attn_layer="se")
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match="use_se"):
        old = cls(32, 32, use_se=True)
    assert list(old.state_dict()) == list(new.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))
    with pytest.warns(DeprecationWarning):
        assert isinstance(cls(32, 32, use_se=False).se, nn.Identity)
    with pytest.raises(TypeError, match="use_se"):
        cls(32, 32, use_se=True, attn_layer="eca")
    assert isinstance(cls(32, 32, attn_layer="eca").se, vb.block_info("eca").cls)
    m = cls(32, 32, attn_layer=SqueezeExcite, attn_kwargs={"reduction": 4})
    assert m.se.fc1.out_channels == 8
