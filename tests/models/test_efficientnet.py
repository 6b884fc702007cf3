"""Tests of :mod:`visionblocks.models.efficientnet`."""
import pytest
import torch

import visionblocks as vb


def test_efficientnet_b0_and_condconv_structure():
    m = vb.create_model("efficientnet_b0")
    assert len(m.blocks) == 16 and [b.out_channels for b in m.blocks][-1] == 320
    assert m.blocks[0].conv_pw.__class__.__name__ == "Identity"  # MBConv1: no expansion
    c = vb.create_model("condconv_efficientnet_b0_8e")
    kinds = [type(b).__name__ for b in c.blocks]
    assert kinds == ["MBConv"] * 8 + ["CondConvMBConv"] * 8  # stages 112, 192, 320 are CondConv
    assert all(b.routing.out_features == 8 for b in c.blocks[8:])
    x = torch.randn(2, 3, 33, 47)
    assert c.eval()(x).shape == (2, 1000)
@pytest.mark.parametrize("name, channels", [("efficientnet_b0", [16, 24, 40, 112, 320]),
                                            ("condconv_efficientnet_b0_8e", [16, 24, 40, 112, 320]),
                                            ("ghostnet_100", [16, 24, 40, 112, 160])])
def test_features_are_the_last_block_at_each_resolution(name, channels):
    """As timm: the last block at /2, /4, /8, /16, /32, before the 1x1 head convolution (forward_final)."""
    m = vb.create_model(name).eval()
    assert m.feature_info.channels() == channels and m.feature_info.reduction() == [2, 4, 8, 16, 32]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final, feats = m.forward_intermediates(x)
        head_conv = m.conv_head if hasattr(m, "conv_head") and name != "ghostnet_100" else m.blocks[-1]
        torch.testing.assert_close(final, head_conv(feats[-1]))
        normed = m.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)[0]
    torch.testing.assert_close(normed, feats[-1])  # the head convolution is no norm
@pytest.mark.parametrize("name", ["efficientnet_b0", "condconv_efficientnet_b0_8e"])
def test_efficientnet_output_stride_dilates_the_depthwise_convolutions(name):
    """DeepLab: the stages past the output stride run at stride 1 with dilated depthwise convolutions (the first
    block of such a stage keeps the previous dilation); parameters unchanged; the features before the cut are
    the native ones."""
    torch.manual_seed(0)
    ref = vb.create_model(name).eval()
    x = torch.randn(1, 3, 64, 64)
    # blocks per stage 1, 2, 2, 3, 3, 4, 1; stages 3 (blocks 5-7) and 5 (blocks 11-14) are the strided ones
    for os_, dil, first in ((16, [1] * 12 + [2] * 4, 11), (8, [1] * 6 + [2] * 6 + [4] * 4, 5)):
        m = vb.create_model(name, output_stride=os_).eval()
        m.load_state_dict(ref.state_dict())
        dw = [b.conv_dw.conv if hasattr(b.conv_dw, "conv") else b.conv_dw for b in m.blocks]
        assert [c.dilation[0] for c in dw] == dil and all(c.stride == (1, 1) for c in dw[first:])
        assert m.feature_info.reduction() == [min(r, os_) for r in (2, 4, 8, 16, 32)]
        with torch.no_grad():
            a = ref.forward_intermediates(x, intermediates_only=True)
            b = m.forward_intermediates(x, intermediates_only=True)
        n_same = 4 if os_ == 16 else 3
        for p, q in zip(a[:n_same], b[:n_same]):
            torch.testing.assert_close(q, p, rtol=0, atol=0)
        assert b[-1].shape[-2:] == (64 // os_, 64 // os_)
    with pytest.raises(ValueError, match="output_stride"):
        vb.create_model(name, output_stride=4)
