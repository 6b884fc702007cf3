"""Plain convolution entries (vanilla, group, pointwise, atrous, transposed), depthwise separable,
spatially separable, ghost and inception blocks against independent float64 references."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.testing import randomize_bn_stats

D = torch.float64


def naive_conv2d(x, w, b, stride, pad, dil, groups):
    """Direct definition: zero padding, loops over output positions, kernel taps and groups."""
    bsz, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = torch.zeros(bsz, c, h + 2 * pad[0], wd + 2 * pad[1], dtype=x.dtype)
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x
    ho = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // groups
    y = torch.zeros(bsz, o, ho, wo, dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            for u in range(kh):
                for v in range(kw):
                    for g in range(groups):
                        pix = xp[:, g * cg:(g + 1) * cg, i * stride[0] + u * dil[0], j * stride[1] + v * dil[1]]
                        y[:, g * og:(g + 1) * og, i, j] += pix @ w[g * og:(g + 1) * og, :, u, v].T
    return y if b is None else y + b.view(1, -1, 1, 1)


def _bn(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


@pytest.mark.parametrize("name,kw", [("vanilla_conv", {}), ("vanilla_conv", {"groups": 2, "dilation": 2}),
                                     ("group_conv", {}), ("group_conv", {"groups": 4}),
                                     ("atrous_conv", {}), ("atrous_conv", {"dilation": 3})])
@pytest.mark.parametrize("stride", [1, 2])
def test_plain_convs_match_naive_loop(name, kw, stride):
    m = vb.create_block(name, 4, 8, 3, stride, **kw).double()
    x = torch.randn(2, 4, 7, 6, dtype=D)
    y = m(x)
    assert y.shape == (2, 8, -(-7 // stride), -(-6 // stride))
    ref = naive_conv2d(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)


def test_group_conv_is_block_diagonal_dense_conv():
    m = vb.create_block("group_conv", 6, 9, 3, groups=3).double()
    dense = torch.zeros(9, 6, 3, 3, dtype=D)
    for g in range(3):
        dense[3 * g:3 * g + 3, 2 * g:2 * g + 2] = m.weight[3 * g:3 * g + 3]
    x = torch.randn(2, 6, 5, 8, dtype=D)
    torch.testing.assert_close(m(x), F.conv2d(x, dense, m.bias, padding=1), rtol=1e-10, atol=1e-10)
    assert m.weight.numel() == 9 * 6 * 9 // 3
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("group_conv", 6, 8, 3, groups=3)


def test_pointwise_conv_is_channel_linear_map():
    m = vb.create_block("pointwise_conv", 5, 7).double()
    x = torch.randn(2, 5, 6, 9, dtype=D)
    ref = torch.einsum("oi,bihw->bohw", m.weight[:, :, 0, 0], x) + m.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    lin = x.permute(0, 2, 3, 1) @ m.weight[:, :, 0, 0].T + m.bias
    torch.testing.assert_close(m(x), lin.permute(0, 3, 1, 2), rtol=1e-10, atol=1e-10)
    s = vb.create_block("pointwise_conv", 5, 7, stride=2).double()
    s.load_state_dict(m.state_dict())
    torch.testing.assert_close(s(x), m(x)[:, :, ::2, ::2], rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="kernel_size 1"):
        vb.create_block("pointwise_conv", 5, 7, 3)


def test_atrous_conv_equals_zero_inserted_kernel_and_receptive_field():
    d, k = 3, 3
    m = vb.create_block("atrous_conv", 3, 4, k, dilation=d).double()
    big = torch.zeros(4, 3, d * (k - 1) + 1, d * (k - 1) + 1, dtype=D)
    big[:, :, ::d, ::d] = m.weight
    x = torch.randn(1, 3, 11, 12, dtype=D, requires_grad=True)
    y = m(x)
    torch.testing.assert_close(y, F.conv2d(x, big, m.bias, padding=d * (k - 1) // 2), rtol=1e-10, atol=1e-10)
    y[0, 0, 5, 6].backward()
    support = (x.grad[0].abs().sum(0) != 0).nonzero().tolist()
    expected = [[5 + d * (u - 1), 6 + d * (v - 1)] for u in range(k) for v in range(k)]
    assert sorted(support) == sorted(expected)


@pytest.mark.parametrize("k,s,groups", [(4, 2, 1), (3, 2, 2), (3, 1, 1), (5, 3, 1)])
def test_transposed_conv_is_adjoint_of_conv_and_upsamples_exactly(k, s, groups):
    m = vb.create_block("transposed_conv", 4, 6, k, s, groups=groups, bias=False).double()
    z = torch.randn(2, 4, 5, 7, dtype=D)
    y = m(z)
    assert y.shape == (2, 6, 5 * s, 7 * s)
    # <conv(u), z> == <u, conv_T(z)>, with conv the strided convolution sharing the (transposed) weight
    u = torch.randn_like(y)
    conv_u = F.conv2d(u, m.weight, None, s, m.padding, m.dilation, groups)
    assert conv_u.shape == z.shape
    torch.testing.assert_close((conv_u * z).sum(), (u * y).sum(), rtol=1e-10, atol=1e-10)
    # zero insertion then a stride-1 convolution with the flipped, channel-transposed kernel
    zi = torch.zeros(2, 4, (5 - 1) * s + 1, (7 - 1) * s + 1, dtype=D)
    zi[:, :, ::s, ::s] = z
    p, op = m.padding[0], m.output_padding[0]
    zi = F.pad(zi, (k - 1 - p, k - 1 - p + op, k - 1 - p, k - 1 - p + op))
    cin_g, cout_g = 4 // groups, 6 // groups
    wt = m.weight.view(groups, cin_g, cout_g, k, k).transpose(1, 2).reshape(6, cin_g, k, k).flip(-1, -2)
    torch.testing.assert_close(y, F.conv2d(zi, wt, groups=groups), rtol=1e-10, atol=1e-10)


def test_transposed_conv_validation():
    with pytest.raises(ValueError, match="output of exactly"):
        vb.create_block("transposed_conv", 4, 4, 4, 1)
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("transposed_conv", 4, 6, groups=4)
    m = vb.create_block("transposed_conv", 4, 4, 3, 1)  # odd kernel, stride 1: size kept
    assert m(torch.randn(1, 4, 5, 6)).shape == (1, 4, 5, 6)


def test_depthwise_separable_is_rank_structured_dense_conv():
    m = vb.create_block("depthwise_separable_conv", 4, 6, 3, 2, norm_layer=None, act_layer=None).double()
    m.conv_dw.conv.bias.data.zero_()
    m.conv_pw.conv.bias.data.zero_()
    dw, pw = m.conv_dw.conv.weight[:, 0], m.conv_pw.conv.weight[:, :, 0, 0]
    dense = pw[:, :, None, None] * dw[None]  # W[o, i, u, v] = P[o, i] D[i, u, v]
    x = torch.randn(2, 4, 9, 8, dtype=D)
    torch.testing.assert_close(m(x), F.conv2d(x, dense, stride=2, padding=1), rtol=1e-10, atol=1e-10)


def test_depthwise_separable_default_matches_mobilenet_equations():
    m = randomize_bn_stats(vb.create_block("depthwise_separable_conv", 8, 16, 3, 2)).double().eval()
    x = torch.randn(2, 8, 9, 10, dtype=D)
    h = F.relu(_bn(F.conv2d(x, m.conv_dw.conv.weight, stride=2, padding=1, groups=8), m.conv_dw.bn))
    ref = F.relu(_bn(F.conv2d(h, m.conv_pw.conv.weight), m.conv_pw.bn))
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert sum(p.numel() for n, p in m.named_parameters() if "conv.weight" in n) == 9 * 8 + 8 * 16


@pytest.mark.parametrize("k,s,mid", [(3, 1, 5), (3, 2, 6), (5, 2, 3)])
def test_spatially_separable_equals_low_rank_kxk_conv(k, s, mid):
    m = vb.create_block("spatially_separable_conv", 4, 6, k, s, mid_channels=mid).double()
    a = m.conv_v.conv.weight[:, :, :, 0]  # (mid, in, K)
    b = m.conv_h.conv.weight[:, :, 0, :]  # (out, mid, K)
    w = torch.einsum("omv,miu->oiuv", b, a)
    x = torch.randn(2, 4, 9, 7, dtype=D)
    ref = F.conv2d(x, w, m.conv_h.conv.bias, stride=s, padding=k // 2)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    assert sum(p.numel() for p in m.parameters()) == k * mid * (4 + 6) + 6


def test_ghost_conv_primary_and_ghost_features():
    for out, stride in [(16, 1), (15, 2)]:
        m = randomize_bn_stats(vb.create_block("ghost_conv", 8, out, 1, stride)).double().eval()
        x = torch.randn(2, 8, 9, 11, dtype=D)
        y = m(x)
        init = -(-out // 2)
        assert y.shape == (2, out, -(-9 // stride), -(-11 // stride))
        prim = F.relu(_bn(F.conv2d(x, m.primary.conv.weight, stride=stride), m.primary.bn))
        ghost = F.relu(_bn(F.conv2d(prim, m.cheap.conv.weight, padding=1, groups=init), m.cheap.bn))
        torch.testing.assert_close(y[:, :init], prim, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(y[:, init:], ghost[:, :out - init], rtol=1e-10, atol=1e-10)
    m = vb.create_block("ghost_conv", 64, 64, act_layer=None)
    convs = m.primary.conv.weight.numel() + m.cheap.conv.weight.numel()
    assert convs == 64 * 32 + 32 * 9 and convs < 0.6 * 64 * 64  # about 1/s of the dense 1x1 (s = 2)
    m3 = vb.create_block("ghost_conv", 6, 12, ratio=3)
    assert m3.primary.conv.out_channels == 4 and m3.cheap.conv.out_channels == 8


@pytest.mark.parametrize("stride", [1, 2])
def test_inception_block_branches_and_concat_order(stride):
    m = vb.create_block("inception_block", 12, 4 + 6 + 3 + 2, 4, 5, 6, 2, 3, 2, stride=stride).double()
    x = torch.randn(2, 12, 9, 10, dtype=D)
    c = lambda t, cna, p=0, s=1: F.relu(F.conv2d(t, cna.conv.weight, cna.conv.bias, s, p))  # noqa: E731
    b1 = c(x, m.branch1, 0, stride)
    b2 = c(c(x, m.branch2[0]), m.branch2[1], 1, stride)
    b3 = c(c(x, m.branch3[0]), m.branch3[1], 2, stride)
    b4 = c(F.max_pool2d(x, 3, stride, 1), m.branch4[1])
    torch.testing.assert_close(m(x), torch.cat([b1, b2, b3, b4], 1), rtol=1e-10, atol=1e-10)
    assert m(x).shape == (2, 15, -(-9 // stride), -(-10 // stride))


def test_inception_3a_defaults_and_validation():
    m = vb.create_block("inception_block", 192, 256)
    # GoogLeNet Table 1, inception (3a) widths: #1x1 64, #3x3red 96, #3x3 128, #5x5red 16, #5x5 32, pool proj 32
    weights = sum(p.numel() for n, p in m.named_parameters() if n.endswith("weight"))
    assert weights == 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    with pytest.raises(ValueError, match="must equal"):
        vb.create_block("inception_block", 192, 255)


# ----------------------------------------------------------------- conv blocks as ConvNormAct(conv_layer=...)
def _conv_layers():
    from visionblocks.blocks.conv import (
        AtrousConv, CoConv, CondConv, DeformableConv, DynamicConv, GroupConv, HetConv, Involution,
        ModulatedDeformableConv, PointwiseConv, VanillaConv,
    )
    return [  # (conv_layer, kernel_size, stride, extra ConvNormAct kwargs)
        (VanillaConv, 3, 2, {"groups": 2}), (GroupConv, 3, 1, {}), (AtrousConv, 3, 1, {"dilation": 2}),
        (PointwiseConv, 1, 2, {}), (DynamicConv, 3, 2, {"num_kernels": 3}), (CondConv, 3, 1, {"num_experts": 2}),
        (DeformableConv, 3, 2, {}), (ModulatedDeformableConv, 3, 1, {"dilation": 2}),
        (CoConv.from_conv_args, 3, 2, {"levels": 2}), (Involution.from_conv_args, 3, 2, {"group_channels": 4}),
        (HetConv.from_conv_args, 3, 1, {"part": 2}),
    ]


@pytest.mark.parametrize("case", range(11))
def test_conv_blocks_serve_as_conv_norm_act_conv_layer(case):
    conv_layer, k, s, kw = _conv_layers()[case]
    torch.manual_seed(0)
    unit = randomize_bn_stats(vb.layers.ConvNormAct(8, 8, k, s, conv_layer=conv_layer, **kw)).to(D).eval()
    x = torch.randn(2, 8, 9, 7, dtype=D)
    assert not isinstance(unit.conv, torch.nn.Identity)
    torch.testing.assert_close(unit(x), F.relu(_bn(unit.conv(x), unit.bn)), rtol=1e-12, atol=1e-12)
    assert unit(x).shape == (2, 8, -(-9 // s), -(-7 // s))


def test_conv_args_adapters_reject_what_the_block_cannot_do():
    from visionblocks.blocks.conv import CoConv, HetConv, Involution
    with pytest.raises(ValueError, match="dilation"):
        CoConv.from_conv_args(8, 8, 3, dilation=2)
    with pytest.raises(ValueError, match="padding"):
        HetConv.from_conv_args(8, 8, 3, padding=0)
    with pytest.raises(ValueError, match="groups"):
        Involution.from_conv_args(8, 8, 3, groups=2, group_channels=4)
    with pytest.raises(ValueError, match="bias"):
        Involution.from_conv_args(8, 8, 3, bias=True, group_channels=4)
    assert CoConv.from_conv_args(8, 16, 3, 2, padding=1, groups=2, bias=True, levels=2).levels[1].dilation == (2, 2)
    with pytest.raises(ValueError, match="no padding"):
        vb.create_block("pointwise_conv", 8, 8, padding=1)


def test_square_kernel_blocks_take_equal_pairs_and_reject_others():
    assert vb.create_block("het_conv", 8, 16, (3, 3), (2, 2), part=2).gwc.stride == (2, 2)
    with pytest.raises(ValueError, match="square"):
        vb.create_block("het_conv", 8, 16, (3, 5), part=2)
    with pytest.raises(ValueError, match="odd"):
        vb.create_block("involution", 16, 16, 4, group_channels=4)
    with pytest.raises(TypeError, match="kernel_size"):
        vb.create_block("coconv", 16, 16, 3.0, levels=2)
