"""Tests that name no single block or model (kept together by scripts/mirror_tests.py)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.conv.res2net_block import Res2NetBlock
from visionblocks.testing import randomize_bn_stats

from _reference import bn_eval as _bn, pool


def test_dilate_convs_is_the_atrous_conversion():
    from visionblocks.layers import ConvNormAct
    from visionblocks.layers.dilation import dilate_convs
    block = nn.Sequential(ConvNormAct(4, 4, 5, groups=4), ConvNormAct(4, 6, 1))
    x = torch.randn(1, 4, 9, 8)
    w = block[0].conv.weight.clone()
    assert dilate_convs(block, 3) is block
    assert block[0].conv.dilation == (3, 3) and block[0].conv.padding == (6, 6) and torch.equal(block[0].conv.weight, w)
    assert block[1].conv.dilation == (1, 1) and block[1].conv.padding == (0, 0)  # 1x1 untouched
    with torch.no_grad():
        ref = F.conv2d(x, w, padding=6, dilation=3, groups=4)
        torch.testing.assert_close(block[0].conv(x), ref)
    assert block.eval()(x).shape == (1, 6, 9, 8)
    with pytest.raises(ValueError, match="stride-1"):
        dilate_convs(ConvNormAct(4, 4, 3, 2), 2)
    with pytest.raises(ValueError, match="dilation"):
        dilate_convs(block, 0)


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
def test_square_kernel_blocks_take_equal_pairs_and_reject_others():
    assert vb.create_block("het_conv", 8, 16, (3, 3), (2, 2), part=2).gwc.stride == (2, 2)
    with pytest.raises(ValueError, match="square"):
        vb.create_block("het_conv", 8, 16, (3, 5), part=2)
    with pytest.raises(ValueError, match="odd"):
        vb.create_block("involution", 16, 16, 4, group_channels=4)
    with pytest.raises(TypeError, match="kernel_size"):
        vb.create_block("coconv", 16, 16, 3.0, levels=2)


def test_attention_by_name_class_or_none():
    from visionblocks.layers import SqueezeExcite
    m = Res2NetBlock(64, 64, attn_layer="se", attn_kwargs={"reduction": 8})
    assert isinstance(m.attn, SqueezeExcite) and m.attn.fc1.out_channels == 8
    assert isinstance(Res2NetBlock(64, 64, attn_layer=SqueezeExcite).attn, SqueezeExcite)
    assert isinstance(Res2NetBlock(64, 64).attn, torch.nn.Identity)


D = torch.float64
def test_pooling_is_the_authors_avgpool_at_multiples_of_r():
    x = torch.randn(2, 4, 16, 12, dtype=D)
    torch.testing.assert_close(pool(x, 4), torch.nn.AvgPool2d(4, 4)(x))


D = torch.float64
def test_pointwise_forward_equals_the_unit_on_a_1x1_map():
    from visionblocks.layers import ConvNormAct
    from visionblocks.layers import pointwise_forward
    s = torch.randn(4, 12, dtype=D)
    for unit in (ConvNormAct(12, 6, 1), ConvNormAct(12, 6, 1, groups=2, bias=True), torch.nn.Conv2d(12, 6, 1)):
        unit = randomize_bn_stats(unit.to(D), seed=2)
        for train in (True, False):
            unit.train(train)
            torch.testing.assert_close(pointwise_forward(s, unit), unit(s[:, :, None, None]).flatten(1),
                                       rtol=1e-12, atol=1e-12)
