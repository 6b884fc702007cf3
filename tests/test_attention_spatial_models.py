"""Structure of the attention reference models (triplet_resnet50, cotnet50, mobilenetv2, coord_mobilenetv2)
and the counting conventions their ``paper_note``s rely on (checked on the meta device: no compute)."""
import numpy as np
import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.blocks.attention.coord_attention import CoordAttention
from visionblocks.blocks.attention.cot import ContextualTransformer
from visionblocks.blocks.attention.triplet_attention import TripletAttention
from visionblocks.blocks.conv.mbconv import MBConv
from visionblocks.models.resnet import Bottleneck


def _meta(name, **kw):
    with torch.device("meta"):
        return vb.create_model(name, **kw).eval()


def test_triplet_resnet50_structure():
    m = _meta("triplet_resnet50")
    blocks = [b for b in m.modules() if isinstance(b, Bottleneck)]
    assert len(blocks) == 16 and all(isinstance(b.attn, TripletAttention) for b in blocks)
    # the stride sits on the 3x3 (ResNet-50 baseline of 4.122 GFLOPs in the paper)
    assert blocks[3].conv2.conv.stride == (2, 2) and blocks[3].conv1.conv.stride == (1, 1)


def test_cotnet50_structure():
    m = _meta("cotnet50")
    blocks = [b for b in m.modules() if isinstance(b, Bottleneck)]
    assert len(blocks) == 16
    for i, b in enumerate(blocks):
        mid = b.conv2
        if i in (3, 7, 13):  # first block of stages 2-4: 3x3/2 average pool, then CoT
            assert isinstance(mid, nn.Sequential) and isinstance(mid[0], nn.AvgPool2d)
            assert isinstance(mid[1], ContextualTransformer)
        else:
            assert isinstance(mid, ContextualTransformer)
        assert isinstance(b.attn, nn.Identity)


def test_coord_mobilenetv2_structure():
    m = _meta("coord_mobilenetv2")
    blocks = [b for b in m.modules() if isinstance(b, MBConv)]
    assert len(blocks) == 17
    assert isinstance(blocks[0].attn, nn.Identity)            # t = 1: no attention (authors' code)
    assert all(isinstance(b.attn, CoordAttention) for b in blocks[1:])
    assert all(b.attn.conv1.out_channels == max(8, b.attn.channels // 32) for b in blocks[1:])
    plain = _meta("mobilenetv2")
    assert all(isinstance(b.attn, nn.Identity) for b in plain.modules() if isinstance(b, MBConv))


@pytest.mark.parametrize("name", ["mobilenetv2", "coord_mobilenetv2"])
def test_mobilenetv2_features_and_output_stride(name):
    """As timm: the last block at /2, /4, /8, /16, /32 (16, 24, 32, 96, 320 channels), the 1x1 head convolution
    after the last; at output_stride 16/8 the later blocks dilate their depthwise convolutions (DeepLab), with
    the same parameters and the native features before the cut."""
    torch.manual_seed(0)
    ref = vb.create_model(name).eval()
    assert ref.feature_info.channels() == [16, 24, 32, 96, 320]
    assert ref.feature_info.module_name() == ["blocks.0", "blocks.2", "blocks.5", "blocks.12", "blocks.16"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final, feats = ref.forward_intermediates(x)
    torch.testing.assert_close(final, ref.conv_head(feats[-1]))
    # blocks per stage 1, 2, 3, 4, 3, 3, 1: blocks 1, 3, 6 and 13 (first of stages 1, 2, 3, 5) are strided
    for os_, dil, n_same in ((16, [1] * 14 + [2] * 3, 4), (8, [1] * 7 + [2] * 7 + [4] * 3, 3)):
        m = vb.create_model(name, output_stride=os_).eval()
        m.load_state_dict(ref.state_dict())
        assert [b.conv_dw.conv.dilation[0] for b in m.blocks] == dil
        assert m.feature_info.reduction() == [min(r, os_) for r in (2, 4, 8, 16, 32)]
        with torch.no_grad():
            got = m.forward_intermediates(x, intermediates_only=True)
        for a, b in zip(feats[:n_same], got[:n_same]):
            torch.testing.assert_close(b, a, rtol=0, atol=0)
        assert all(f.shape[-1] == 64 // r for f, r in zip(got, m.feature_info.reduction()))


def _ptflops_style_macs(model, size=224):
    """Multiply-adds as the ptflops-style counters of the triplet-attention and CoTNet authors count them:
    convolutions (+ bias adds), BatchNorm (2 per element), activations, pooling and linear layers, plus CoT's
    local aggregation (k^2 per output element)."""
    total = [0]

    def conv(m, i, o):
        total[0] += int(np.prod(m.kernel_size)) * (m.in_channels // m.groups) * o.numel()
        total[0] += o.numel() if m.bias is not None else 0

    def elem_out(m, i, o):
        total[0] += o.numel()

    def elem_in(m, i, o):
        total[0] += i[0].numel()

    hooks = {nn.Conv2d: conv, nn.BatchNorm2d: lambda m, i, o: total.__setitem__(0, total[0] + 2 * o.numel()),
             nn.ReLU: elem_out, nn.SiLU: elem_out, nn.Sigmoid: elem_out, nn.AvgPool2d: elem_in, nn.MaxPool2d: elem_in,
             nn.Linear: lambda m, i, o: total.__setitem__(0, total[0] + i[0].numel() * o.shape[-1]),
             ContextualTransformer: lambda m, i, o: total.__setitem__(0, total[0] + m.kernel_size ** 2 * o.numel())}
    for mod in model.modules():
        if type(mod) in hooks:
            mod.register_forward_hook(hooks[type(mod)])
    with torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    return total[0] / 1e9


@pytest.mark.parametrize("name,paper,ndigits", [("triplet_resnet50", 4.169, 3), ("cotnet50", 3.3, 1)])
def test_paper_flops_follow_ptflops_convention(name, paper, ndigits):
    """The paper figures are reproduced by the authors' counting convention (see each paper_note)."""
    assert round(_ptflops_style_macs(_meta(name)), ndigits) == paper
