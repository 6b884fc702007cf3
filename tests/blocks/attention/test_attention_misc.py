"""Tests that name no single block or model (kept together by scripts/mirror_tests.py)."""
import math

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _float64, _randomize, _softmax_rows


def test_constructor_validation():
    with pytest.raises(ValueError, match="channels must be positive"):
        vb.create_block("se", 0)
    with pytest.raises(TypeError, match="channels must be an int"):
        vb.create_block("cbam", 3.5)
    with pytest.raises(ValueError, match="odd"):
        vb.create_block("eca", 64, kernel_size=4)


D = torch.float64
def test_rd_channels_overrides_reduction_in_every_gate():
    """One vocabulary: ``reduction`` (C // r), ``rd_channels`` (explicit width, keyword only)."""
    assert vb.create_block("bam", 64).channel_gate.mlp.fc1.out_channels == 4
    bam = vb.create_block("bam", 64, rd_channels=10)
    assert bam.channel_gate.mlp.fc1.out_channels == bam.spatial_gate.body[0].conv.out_channels == 10
    assert vb.create_block("cbam", 64, rd_channels=6).channel_gate.mlp.fc1.out_channels == 6
    assert vb.create_block("pyramid_split_attention", 128).se.fc1.out_channels == 2     # 32 // 16
    assert vb.create_block("pyramid_split_attention", 128, rd_channels=5).se.fc1.out_channels == 5
    assert vb.create_block("coord_attention", 64, rd_channels=5).conv1.out_channels == 5
    assert vb.create_block("danet", 64, reduction=2).pos_attn.conv_b.out_channels == 4   # (64 // 2) // 8
    with pytest.raises(ValueError, match="reduction must be a positive number"):
        vb.create_block("cbam", 64, reduction=0)
def test_conv_mlp_on_vectors_equals_on_1x1_maps():
    from visionblocks.layers import ConvMlp
    from visionblocks.layers import pointwise_linear
    m = _randomize(ConvMlp(6, 3, 5, act_layer="relu")).double()
    s = torch.randn(4, 2, 6, dtype=D)                     # any leading dimensions
    torch.testing.assert_close(m.forward_vector(s), m(s.reshape(8, 6, 1, 1)).reshape(4, 2, 5), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="1x1 convolution without groups"):
        pointwise_linear(s, torch.nn.Conv2d(6, 6, 3))


D = torch.float64
def test_multi_head_attention_layer_with_key_mask_and_out_dim():
    """The shared attention layer (SelfAttention, MobileViT, CoAtNet): masked keys get no weight; in -> out dim."""
    from visionblocks.layers import MultiHeadAttention
    torch.manual_seed(0)
    m = MultiHeadAttention(12, num_heads=2, out_dim=8).double().eval()
    x = torch.randn(2, 5, 12, dtype=D)
    keep = torch.tensor([True, False, True, True, False])
    wq, wk, wv = m.qkv.weight.chunk(3, 0)
    bq, bk, bv = m.qkv.bias.chunk(3, 0)
    # reference on the kept keys only: a masked key is the same as an absent one
    q, k, v = x @ wq.T + bq, x[:, keep] @ wk.T + bk, x[:, keep] @ wv.T + bv
    ref = torch.cat([_softmax_rows(q[..., s] @ k[..., s].transpose(1, 2) / 2.0) @ v[..., s]
                     for s in (slice(0, 4), slice(4, 8))], -1) @ m.proj.weight.T + m.proj.bias
    torch.testing.assert_close(m(x, keep[None]), ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"out_dim \(9\) must be divisible by num_heads \(2\)"):
        MultiHeadAttention(12, num_heads=2, out_dim=9)


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


@pytest.mark.usefixtures("_float64")
def test_mobilevitv2_context_score_by_hand():
    """One sequence of 3 tokens, d = 1: c_s = softmax(w_I x + b_I), c_v = sum c_s (w_K x + b_K)."""
    from visionblocks.blocks.attention.mobilevitv2_attention import SeparableSelfAttention
    att = SeparableSelfAttention(1).double()
    with torch.no_grad():
        att.qkv.weight.copy_(torch.tensor([2.0, 1.0, -1.0]).reshape(3, 1, 1, 1))
        att.qkv.bias.copy_(torch.tensor([0.5, 0.0, 1.0]))
        att.proj.weight.fill_(1.0)
        att.proj.bias.zero_()
    xs = [1.0, -2.0, 0.0]
    x = torch.tensor(xs).reshape(1, 1, 1, 3)
    e = [math.exp(2 * v + 0.5) for v in xs]
    cs = [t / sum(e) for t in e]
    cv = sum(c * v for c, v in zip(cs, xs))
    expected = [max(0.0, -v + 1.0) * cv for v in xs]
    torch.testing.assert_close(att(x).flatten(), torch.tensor(expected))
@pytest.mark.usefixtures("_float64")
@pytest.mark.parametrize("channels_last", [False, True])
def test_patch_unfold_fold_layout_and_round_trip(channels_last):
    from visionblocks.layers import fold_patches, pad_to_patches, unfold_patches
    x = torch.randn(2, 3, 4, 6)
    t = unfold_patches(x, 2, 3, channels_last=channels_last)
    for b, c, p, n in [(0, 0, 0, 0), (1, 2, 4, 3), (1, 1, 5, 1), (0, 2, 3, 2)]:
        (pi, pj), (ni, nj) = divmod(p, 3), divmod(n, 2)      # pixel p of patch n
        got = t[b * 6 + p, n, c] if channels_last else t[b, c, p, n]
        assert got == x[b, c, ni * 2 + pi, nj * 3 + pj]
    assert torch.equal(fold_patches(t, 4, 6, 2, 3, channels_last=channels_last), x)
    y, valid = pad_to_patches(x[..., :3, :5], 2, 3)
    assert y.shape == (2, 3, 4, 6) and valid.shape == (1, 1, 4, 6) and valid.sum() == 15
    assert torch.equal(y[..., :3, :5], x[..., :3, :5]) and y[..., 3:, :].abs().sum() == 0
    assert pad_to_patches(x, 2, 3) == (x, None)
