"""RepVGG, ACNet and DBB blocks against independent float64 references written from the papers' equations:
each branch computed with explicit ops (BatchNorm by its formula with running statistics, DBB's 1x1 branches
on a *zero-padded input*, the equality the paper's transforms rely on), summed, then compared with the
training form and with the folded convolution, over kernel sizes, strides, groups and SE."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.reparam import ACBlock, DiverseBranchBlock, RepVGGBlock
from visionblocks.layers import SqueezeExcite
from visionblocks.testing import randomize_bn_stats

CONFIGS = [  # (in, out, k, stride, groups, RepVGG's SE after the sum)
    (8, 8, 3, 1, 1, False),
    (8, 12, 3, 2, 2, True),
    (8, 8, 5, 1, 4, False),
    (6, 6, 3, 2, 6, False),   # depthwise
    (8, 8, 3, 1, 8, True),    # depthwise, stride 1
    (3, 16, 7, 2, 1, False),  # a ResNet stem
    (4, 6, 1, 2, 1, False),
]


def _random(m: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.2)
    return randomize_bn_stats(m, seed=seed + 1).eval()


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


def test_acnet_folded_kernel_is_the_skeleton_sum():
    """ACNet Sec. 3.3: the 3x1 and 1x3 BN-fused kernels are added onto the square kernel's centre column/row."""
    torch.manual_seed(0)
    m = _random(ACBlock(4, 6, 3).double())

    def fused(unit):
        t = unit.bn.weight / torch.sqrt(unit.bn.running_var + unit.bn.eps)
        return unit.conv.weight * t[:, None, None, None], unit.bn.bias - unit.bn.running_mean * t

    (ws, bs), (wv, bv), (wh, bh) = (fused(m.body[n]) for n in ("square", "ver", "hor"))
    w = ws.clone()
    w[:, :, :, 1] += wv[:, :, :, 0]
    w[:, :, 1, :] += wh[:, :, 0, :]
    with torch.no_grad():
        m.reparameterize()
    torch.testing.assert_close(m.body.weight, w, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.body.bias, bs + bv + bh, rtol=1e-12, atol=1e-12)


def test_repvgg_identity_only_when_shapes_allow():
    assert "identity" in RepVGGBlock(8, 8, 3, 1).body
    assert "identity" not in RepVGGBlock(8, 8, 3, 2).body
    assert "identity" not in RepVGGBlock(8, 16, 3, 1).body


def test_repvgg_closed_form():
    """Zero conv kernels and a unit identity BN: the block is relu(x)."""
    m = RepVGGBlock(4, 4, 3).double().eval()
    with torch.no_grad():
        for n in ("conv_kxk", "conv_1x1"):
            m.body[n].conv.weight.zero_()
        bn = m.body["identity"]
        bn.running_var.fill_(1.0 - bn.eps)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(m(x), torch.relu(x))
    m.reparameterize()
    torch.testing.assert_close(m(x), torch.relu(x))


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


def test_dbb_identity_based_1x1_starts_as_identity():
    m = DiverseBranchBlock(8, 8, 3, groups=2)
    conv1 = m.body["conv_1x1_kxk"].conv1
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(conv1(x), x)
    dw = DiverseBranchBlock(8, 8, 3, groups=8)
    assert dw.depthwise and "conv_1x1" not in dw.body and dw.body["conv_1x1_kxk"].conv1.out_channels == 16


def test_dbb_paper_branches():
    m = DiverseBranchBlock(16, 32, 3)
    assert list(m.body) == ["origin", "conv_1x1", "avg", "conv_1x1_kxk"]


@pytest.mark.parametrize("cls", [RepVGGBlock, ACBlock, DiverseBranchBlock])
def test_hyper_parameter_validation(cls):
    with pytest.raises(ValueError, match=r"in_channels \(6\) must be divisible by groups \(4\)"):
        cls(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match=r"out_channels \(6\) must be divisible by groups \(4\)"):
        cls(8, 6, 3, groups=4)
    with pytest.raises(ValueError, match="odd"):
        cls(8, 8, 4)
    with pytest.raises(ValueError, match="stride"):
        cls(8, 8, 3, stride=0)
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 8, H, W\), got \(2, 7, 5, 5\)"):
        cls(8, 8, 3)(torch.randn(2, 7, 5, 5))


def test_dbb_internal_channels_validation():
    with pytest.raises(ValueError, match=r"internal_channels \(10\) must be divisible by groups \(4\)"):
        DiverseBranchBlock(8, 8, 3, groups=4, internal_channels=10)
    m = _random(DiverseBranchBlock(8, 8, 3, groups=4, internal_channels=12).double())
    x = torch.randn(1, 8, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        y = m(x)
        m.reparameterize()
        torch.testing.assert_close(m(x), y, rtol=1e-10, atol=1e-10)


def test_training_mode_uses_batch_statistics_and_learns():
    """The training form trains like any conv-BN network: batch statistics, gradients reach every branch."""
    m = DiverseBranchBlock(4, 4, 3).train()
    y = m(torch.randn(4, 4, 6, 6) * 3 + 1)
    origin = m.body["origin"]
    assert origin.bn.num_batches_tracked.item() == 1
    y.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
