"""Tests of :mod:`visionblocks.blocks.conv.pointwise_conv`."""
import pytest
import torch

import visionblocks as vb


D = torch.float64
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
