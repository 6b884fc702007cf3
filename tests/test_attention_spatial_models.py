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
