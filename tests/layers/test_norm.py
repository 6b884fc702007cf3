"""Tests of :mod:`visionblocks.layers.norm`."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import LayerNorm2d, get_act_layer, get_norm_layer


def test_layernorm2d_equals_layernorm_over_channels():
    ln = LayerNorm2d(5)
    nn.init.normal_(ln.weight)
    x = torch.randn(2, 5, 3, 4)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (5,), ln.weight, ln.bias).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref)
def test_lookup_by_name_or_class():
    assert get_act_layer("gelu") is nn.GELU and get_act_layer(nn.ReLU) is nn.ReLU and get_act_layer(None) is nn.Identity
    assert get_norm_layer("layernorm2d") is LayerNorm2d
    with pytest.raises(ValueError, match="unknown activation 'gelo'"):
        get_act_layer("gelo")
