"""Structure of the channel-attention reference models (built on the meta device: no compute)."""
import pytest
import torch

import visionblocks as vb
from visionblocks.blocks.attention.bam import BAM
from visionblocks.blocks.attention.pyramid_split_attention import PyramidSplitAttention
from visionblocks.blocks.attention.sge import SpatialGroupEnhance
from visionblocks.blocks.attention.shuffle_attention import ShuffleAttention
from visionblocks.blocks.conv.selective_kernel_conv import SelectiveKernelConv
from visionblocks.models.resnet import Bottleneck


def _meta(name):
    with torch.device("meta"):
        return vb.create_model(name)


def _bottlenecks(model):
    return [m for m in model.modules() if isinstance(m, Bottleneck)]


def test_sk_resnet50_is_resnext50_with_sk_units():
    blocks = _bottlenecks(_meta("sk_resnet50"))
    assert len(blocks) == 16
    widths = []
    for b in blocks:
        sk = b.conv2
        assert isinstance(sk, SelectiveKernelConv) and len(sk.branches) == 2
        assert [br.conv.dilation for br in sk.branches] == [(1, 1), (2, 2)]
        assert all(br.conv.groups == 32 for br in sk.branches)
        assert sk.fuse.conv.out_channels == max(sk.out_channels // 16, 32)
        assert b.conv1.conv.stride == (1, 1)  # the stride is on the SK convolution
        widths.append(sk.out_channels)
    assert widths == [128] * 3 + [256] * 4 + [512] * 6 + [1024] * 3
    assert [b.conv2.branches[0].conv.stride[0] for b in blocks if b.conv2.branches[0].conv.stride[0] > 1] == [2, 2, 2]


def test_bam_resnet50_places_bam_between_stages():
    m = _meta("bam_resnet50")
    ends = [stage[-1] for stage in m.stages]
    assert [e.channels for e in ends[:3] if isinstance(e, BAM)] == [256, 512, 1024]
    assert not isinstance(ends[3], BAM)
    assert sum(isinstance(x, BAM) for x in m.modules()) == 3
    assert all(b.conv1.conv.stride == b.shortcut.conv.stride for b in _bottlenecks(m)
               if not isinstance(b.shortcut, torch.nn.Identity))  # He et al.: stride on the first 1x1


def test_epsanet50_small_uses_psa_with_paper_groups():
    blocks = _bottlenecks(_meta("epsanet50_small"))
    for b in blocks:
        psa = b.conv2.op
        assert isinstance(psa, PyramidSplitAttention)
        assert [(c.kernel_size[0], c.groups) for c in psa.convs] == [(3, 1), (5, 4), (7, 8), (9, 16)]
        assert isinstance(b.conv2.bn, torch.nn.BatchNorm2d)
    assert sum(b.conv2.op.convs[0].stride[0] == 2 for b in blocks) == 3


@pytest.mark.parametrize("name,cls", [("sa_resnet50", ShuffleAttention), ("sge_resnet50", SpatialGroupEnhance)])
def test_sa_and_sge_resnet50_gate_every_bottleneck(name, cls):
    blocks = _bottlenecks(_meta(name))
    assert all(isinstance(b.attn, cls) and b.attn.groups == 64 for b in blocks)
    assert all(b.conv1.conv.stride == (1, 1) for b in blocks)  # stride on the 3x3 (torchvision ResNet)
