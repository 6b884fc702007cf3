"""Tests of :mod:`visionblocks.models.coatnet`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _float64, _randomize_attention_window


@pytest.mark.usefixtures("_float64")
def test_coatnet_relative_bias_at_larger_size_is_interpolated_table():
    from visionblocks.blocks.attention.coatnet_attention import relative_position_bias
    table = torch.randn(2, 5, 5)                                   # built for 3x3
    big = F.interpolate(table[None], size=(9, 7), mode="bicubic", align_corners=False)[0]
    bias = relative_position_bias(table, 5, 4)                     # needs 9 x 7 offsets
    for p in range(20):
        for q in range(20):
            (yi, xi), (yj, xj) = divmod(p, 4), divmod(q, 4)
            torch.testing.assert_close(bias[:, p, q], big[:, yi - yj + 4, xi - xj + 3])
    # mixed: larger along H only -> W axis is cropped, H axis interpolated
    bias = relative_position_bias(table, 4, 2)
    tall = F.interpolate(table[None], size=(7, 5), mode="bicubic", align_corners=False)[0][:, :, 1:4]
    torch.testing.assert_close(bias[:, 0, 7], tall[:, 0 - 3 + 3, 0 - 1 + 1])
@pytest.mark.usefixtures("_float64")
def test_coatnet_downsampling_block():
    m = _randomize_attention_window(vb.create_block("coatnet_attention", 16, 32, dim_head=8, rel_size=4, stride=2))
    x = torch.randn(2, 16, 9, 8)
    with torch.no_grad():
        y = m(x)
        # the first half of Eq. (5): Proj(Pool(x)) + Attention(Pool(LN(x))) with 3x3/2 max pooling
        ln = F.layer_norm(x.permute(0, 2, 3, 1), (16,), m.norm1.weight, m.norm1.bias).permute(0, 3, 1, 2)
        pooled = F.max_pool2d(ln, 3, 2, 1)
        short = F.conv2d(F.max_pool2d(x, 3, 2, 1), m.shortcut.weight, m.shortcut.bias).flatten(2).transpose(1, 2)
        t = short + m.attn(pooled.flatten(2).transpose(1, 2), 5, 4)
        t = t + m.mlp(m.norm2(t))
    assert y.shape == (2, 32, 5, 4)
    torch.testing.assert_close(y, t.transpose(1, 2).reshape(2, 32, 5, 4))
