"""Tests of :mod:`visionblocks.models.mobilenetv2`."""
import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.blocks.attention.coord_attention import CoordAttention
from visionblocks.blocks.conv.mbconv import MBConv

from _reference import _meta_attention_spatial_models


def test_coord_mobilenetv2_structure():
    m = _meta_attention_spatial_models("coord_mobilenetv2")
    blocks = [b for b in m.modules() if isinstance(b, MBConv)]
    assert len(blocks) == 17
    assert isinstance(blocks[0].attn, nn.Identity)            # t = 1: no attention (authors' code)
    assert all(isinstance(b.attn, CoordAttention) for b in blocks[1:])
    assert all(b.attn.conv1.out_channels == max(8, b.attn.channels // 32) for b in blocks[1:])
    plain = _meta_attention_spatial_models("mobilenetv2")
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
