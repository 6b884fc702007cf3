"""Tests of :mod:`visionblocks.models.gfnet`."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.models.gfnet import GFNet

from _reference import _global_filter_reference, _layer_norm


D = torch.float64
@pytest.mark.parametrize("name,dim,depth", [("gfnet_ti", 256, 12), ("gfnet_xs", 384, 12), ("gfnet_s", 384, 19)])
def test_gfnet_configuration(name, dim, depth):
    with torch.device("meta"):
        m = vb.create_model(name)
    assert len(m.blocks) == depth and m.pos_embed.shape == (1, 196, dim)
    assert m.blocks[0].filter.complex_weight.shape == (14, 8, dim, 2)
    assert m.blocks[0].mlp.fc1.out_features == 4 * dim and m.norm.eps == 1e-6
@pytest.mark.parametrize("size", [(224, 224), (64, 48)])
def test_gfnet_reference_forward(size):
    torch.manual_seed(0)
    C = 8
    m = GFNet(embed_dim=C, depth=2, num_classes=3).double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x = torch.randn(1, 3, *size, dtype=D)
    gh, gw = size[0] // 16, size[1] // 16
    # patch embedding as a matrix product over flattened 16x16 patches
    patches = x.reshape(1, 3, gh, 16, gw, 16).permute(0, 2, 4, 1, 3, 5).reshape(1, gh, gw, 3 * 256)
    t = patches @ m.patch_embed.weight.reshape(C, -1).T + m.patch_embed.bias
    pos = m.pos_embed.detach().reshape(1, 14, 14, C).permute(0, 3, 1, 2)
    if (gh, gw) != (14, 14):
        pos = F.interpolate(pos, size=(gh, gw), mode="bicubic", align_corners=False)
    t = t + pos.permute(0, 2, 3, 1)
    for blk in m.blocks:
        u = _layer_norm(t, blk.norm1.weight, blk.norm1.bias, 1e-6).permute(0, 3, 1, 2)
        w = blk.filter.complex_weight.detach()
        if (gh, gw // 2 + 1) != (14, 8):
            grid = w.permute(2, 3, 0, 1).reshape(1, 2 * C, 14, 8)
            w = F.interpolate(grid, size=(gh, gw // 2 + 1), mode="bicubic", align_corners=True)
            w = w.reshape(C, 2, gh, gw // 2 + 1).permute(2, 3, 0, 1)
        K = torch.view_as_complex(w.contiguous()).permute(2, 0, 1)
        u = _global_filter_reference(u, K).permute(0, 2, 3, 1)
        u = _layer_norm(u, blk.norm2.weight, blk.norm2.bias, 1e-6)
        hid = u @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias
        hid = 0.5 * hid * (1 + torch.erf(hid / math.sqrt(2)))
        t = t + hid @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias
    t = _layer_norm(t, m.norm.weight, m.norm.bias, 1e-6)
    ref = t.mean((1, 2)) @ m.head.fc.weight.T + m.head.fc.bias
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_a_dynamic_export_runs_at_the_native_size_too():
    """Exported with a dynamic size at 128, GFNet runs at 224, the size its filters are stored for (the filter
    was used as is there and resized elsewhere, a branch the program held: it refused 224), and elsewhere."""
    from torch.export import Dim
    torch.manual_seed(0)
    m = vb.create_model("gfnet_ti", num_classes=10).eval()
    ep = torch.export.export(m, (torch.randn(2, 3, 128, 128),),
                             dynamic_shapes=({0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO},))
    for size in (224, 96, 160):
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            torch.testing.assert_close(ep.module()(x), m(x), rtol=1e-5, atol=1e-5)
