"""Tests of :mod:`visionblocks.models.attention_resnets`."""
import pytest
import torch

import visionblocks as vb
from visionblocks.blocks.attention.bam import BAM
from visionblocks.blocks.attention.sge import SpatialGroupEnhance
from visionblocks.blocks.attention.shuffle_attention import ShuffleAttention
from visionblocks.blocks.attention.triplet_attention import TripletAttention
from visionblocks.models.resnet import Bottleneck

from _reference import _bottlenecks, _meta, _meta_attention_spatial_models


def test_bam_resnet50_places_bam_between_stages():
    m = _meta("bam_resnet50")
    ends = [stage[-1] for stage in m.stages]
    assert [e.channels for e in ends[:3] if isinstance(e, BAM)] == [256, 512, 1024]
    assert not isinstance(ends[3], BAM)
    assert sum(isinstance(x, BAM) for x in m.modules()) == 3
    assert all(b.conv1.conv.stride == b.shortcut.conv.stride for b in _bottlenecks(m)
               if not isinstance(b.shortcut, torch.nn.Identity))  # He et al.: stride on the first 1x1
@pytest.mark.parametrize("name,cls", [("sa_resnet50", ShuffleAttention), ("sge_resnet50", SpatialGroupEnhance)])
def test_sa_and_sge_resnet50_gate_every_bottleneck(name, cls):
    blocks = _bottlenecks(_meta(name))
    assert all(isinstance(b.attn, cls) and b.attn.groups == 64 for b in blocks)
    assert all(b.conv1.conv.stride == (1, 1) for b in blocks)  # stride on the 3x3 (torchvision ResNet)


def test_triplet_resnet50_structure():
    m = _meta_attention_spatial_models("triplet_resnet50")
    blocks = [b for b in m.modules() if isinstance(b, Bottleneck)]
    assert len(blocks) == 16 and all(isinstance(b.attn, TripletAttention) for b in blocks)
    # the stride sits on the 3x3 (ResNet-50 baseline of 4.122 GFLOPs in the paper)
    assert blocks[3].conv2.conv.stride == (2, 2) and blocks[3].conv1.conv.stride == (1, 1)


def test_attention_resnets_are_registered_one_way():
    import visionblocks.models.attention_resnets as ar
    expected = {"se_resnet50": ("se", None, False), "cbam_resnet50": ("cbam", None, False),
                "eca_resnet50": ("eca", None, False), "bam_resnet50": (None, "bam", False),
                "sa_resnet50": ("shuffle_attention", None, True), "triplet_resnet50": ("triplet_attention", None, True),
                "sge_resnet50": ("sge", None, True)}
    with torch.device("meta"):
        plain = [p.shape for p in vb.create_model("resnet50").parameters()]
    for name, (attn, stage_attn, stride_3x3) in expected.items():
        fn = vb.model_info(name).fn
        assert fn is getattr(ar, name) and fn.__name__ == name and fn.__doc__
        with torch.device("meta"):
            m = fn()
            bare = fn(attn=None, stage_attn=None)  # the user's values replace the variant's
        assert [p.shape for p in bare.parameters()] == plain
        assert (m.stages[1][0].conv2.conv.stride == (2, 2)) == stride_3x3
        if attn:
            assert all(type(b.attn) is vb.block_info(attn).cls for b in m.modules() if isinstance(b, Bottleneck))
        else:
            assert [type(s[-1]) for s in m.stages][:3] == [vb.block_info(stage_attn).cls] * 3


def test_eca_resnet50_per_stage_kernel_sizes():
    """Adaptive by default (5, 5, 5, 7 for 256..2048 channels); ``eca_kernel_sizes`` sets one per stage (the
    authors' released ECA-Net50: 3, 5, 5, 7); the ECA output is the k-tap channel convolution of the pooled map."""
    from visionblocks.blocks.attention.eca import EfficientChannelAttention
    adaptive = _meta("eca_resnet50")
    assert [[b.attn.kernel_size for b in s] for s in adaptive.stages] == [[5] * 3, [5] * 4, [5] * 6, [7] * 3]
    with torch.device("meta"):
        m = vb.create_model("eca_resnet50", eca_kernel_sizes=(3, 5, 5, 7), stride_3x3=True)
    assert [[b.attn.kernel_size for b in s] for s in m.stages] == [[3] * 3, [5] * 4, [5] * 6, [7] * 3]
    assert [tuple(b.attn.conv.weight.shape) for b in (s[0] for s in m.stages)] == [(1, 1, 3), (1, 1, 5), (1, 1, 5), (1, 1, 7)]
    assert all(isinstance(b.attn, EfficientChannelAttention) for b in _bottlenecks(m))
    assert m.stages[1][0].conv2.conv.stride == (2, 2)
    with pytest.raises(ValueError, match="one kernel size per stage"):
        vb.create_model("eca_resnet50", eca_kernel_sizes=(3, 5, 7))
    with pytest.raises(ValueError, match="attn"):
        vb.create_model("eca_resnet50", eca_kernel_sizes=(3, 5, 5, 7), attn="se")
