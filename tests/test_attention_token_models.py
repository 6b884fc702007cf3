"""ResT and GFNet: structure at the paper's configurations and a float64 reference forward of a small GFNet."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.models.gfnet import GFNet
from visionblocks.models.rest import ResT

from test_attention_token import _global_filter_reference, _layer_norm

D = torch.float64


@pytest.mark.parametrize("name,dims,depths", [("rest_lite", (64, 128, 256, 512), (2, 2, 2, 2)),
                                              ("rest_small", (64, 128, 256, 512), (2, 2, 6, 2)),
                                              ("rest_base", (96, 192, 384, 768), (2, 2, 6, 2))])
def test_rest_configuration(name, dims, depths):
    with torch.device("meta"):
        m = vb.create_model(name)
    assert [len(s.blocks) for s in m.stages] == list(depths)
    for stage, dim, heads, sr in zip(m.stages, dims, (1, 2, 4, 8), (8, 4, 2, 1)):
        attn = stage.blocks[0].attn
        assert (attn.channels, attn.num_heads, attn.sr_ratio) == (dim, heads, sr)
        assert attn.apply_transform == (heads > 1) and attn.q.bias is not None
        assert stage.pos.conv.groups == dim and stage.pos.conv.kernel_size == (3, 3)
    stem_conv = m.stages[0].embed[0].conv
    assert stem_conv.kernel_size == (7, 7) and stem_conv.stride == (2, 2)
    assert m.stages[1].embed.conv.kernel_size == (3, 3) and m.stages[1].embed.conv.stride == (2, 2)


def test_rest_any_size():
    m = ResT(embed_dims=(8, 16, 16, 16), num_heads=(1, 2, 2, 2), depths=(1, 1, 1, 1), num_classes=5).eval()
    with torch.no_grad():
        for size in ((50, 77), (33, 32)):
            assert m(torch.randn(1, 3, *size)).shape == (1, 5)
    assert m.forward_features(torch.randn(1, 3, 64, 96)).shape == (1, 16, 2, 3)


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


def test_metaformer_block_is_the_prenorm_layer():
    from visionblocks.layers import MetaFormerBlock

    mixer = torch.nn.Linear(8, 8).double()
    m = MetaFormerBlock(8, mixer, mlp_ratio=2.0).double().eval()
    assert list(dict(m.named_children())) == ["norm1", "attn", "norm2", "mlp", "drop_path"]   # state-dict order
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    ln = lambda t, n: F.layer_norm(t, (8,), n.weight, n.bias, n.eps)  # noqa: E731
    u = x + mixer(ln(x, m.norm1))
    y = u + m.mlp.fc2(F.gelu(m.mlp.fc1(ln(u, m.norm2))))
    torch.testing.assert_close(m(x), y, rtol=1e-13, atol=1e-13)
    assert m.mlp.fc1.out_features == 16


def test_volo_class_attention_matches_per_head_loop():
    from visionblocks.models.volo import ClassAttention

    m = ClassAttention(12, 3).double()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    k, v = m.kv(x).split(12, dim=-1)
    q = m.q(x[:, :1])
    heads = []
    for h in range(3):
        s = slice(4 * h, 4 * h + 4)
        a = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / 2.0, dim=-1)    # scale 1 / sqrt(4)
        heads.append(a @ v[..., s])
    torch.testing.assert_close(m(x), m.proj(torch.cat(heads, -1)), rtol=1e-12, atol=1e-12)
