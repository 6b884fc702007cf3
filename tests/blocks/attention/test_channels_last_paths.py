"""The blocks with a channels-last path (gates: pools on the (B, H, W, C) view, gates laid out as the map,
shuffle attention's own form; involution and CoT: the local aggregation on the (B, H, W, C) memory): a
channels-last input gives the NCHW input's values and gradients (float64, eval and training) and a channels-last
output, so the next convolution of a channels-last network gets its layout."""
import copy

import pytest
import torch

import visionblocks as vb
from visionblocks.layers import is_channels_last, layout_like

from _reference import _randomize


@pytest.mark.parametrize("name,args,kwargs", [
    ("cbam", (32,), {}), ("coord_attention", (32,), {}), ("triplet_attention", (64,), {}),
    ("shuffle_attention", (32,), {"groups": 4}), ("se", (32,), {}), ("eca", (32,), {}),
    ("involution", (32, 32, 5, 1), {"group_channels": 8}), ("involution", (32, 32, 3, 2), {"group_channels": 8}),
    ("cot", (32,), {})])
@pytest.mark.parametrize("training", [False, True])
def test_channels_last_input_same_values_gradients_and_layout(name, args, kwargs, training):
    channels = args[0]
    m = _randomize(vb.create_block(name, *args, **kwargs), scale=0.5).double().train(training)
    m_cl = copy.deepcopy(m)
    x = torch.randn(2, channels, 9, 11, dtype=torch.float64)
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    y, y_cl = m(x), m_cl(x_cl)
    torch.testing.assert_close(y_cl, y, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        y_ng = m_cl.eval()(x_cl)
        torch.testing.assert_close(y_ng, m.eval()(x), rtol=1e-10, atol=1e-12)
    assert is_channels_last(y_ng), f"{name}: a channels-last input gave strides {y_ng.stride()}"
    g = torch.randn_like(y)
    got = torch.autograd.grad(y_cl, [x_cl, *m_cl.parameters()], g, allow_unused=True)
    want = torch.autograd.grad(y, [x, *m.parameters()], g, allow_unused=True)
    for a, b in zip(got, want):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_layout_like():
    x = torch.randn(2, 3, 4, 5)
    g = torch.randn(2, 3, 4, 1)
    assert layout_like(g, x) is g                                     # already laid out as the NCHW map
    x_cl = x.contiguous(memory_format=torch.channels_last)
    g_cl = layout_like(g, x_cl)
    assert g_cl.stride(1) == 1 and torch.equal(g_cl, g)              # C innermost, same values
    assert layout_like(g_cl, x_cl) is g_cl
    assert layout_like(g_cl, x).is_contiguous()


def test_shuffle_attention_channels_last_float16_does_not_overflow():
    """Its statistics over the positions are means: a float16 sum of 3136 positions of ~30 (94,000) is inf."""
    torch.manual_seed(0)
    m = vb.create_block("shuffle_attention", 128).eval()
    x = torch.randn(2, 128, 56, 56) * 3 + 30
    with torch.no_grad():
        ref = m(x)
        out = m.half()(x.half().contiguous(memory_format=torch.channels_last))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2 * ref.abs().max().item())


# blocks that compute on another layout inside (tokens, (B, H, W, C) tables, per-sample groups, FFTs, padded
# windows) and put their result back in the input's layout: odd sizes, strides, float64, gradients
LAYOUT_CASES = [
    ("halo_attention", (64,), {"block_size": 4, "halo_size": 1, "num_heads": 4}, (13, 11)),
    ("halo_attention", (64,), {"block_size": 4, "halo_size": 1, "num_heads": 4, "stride": 2}, (13, 11)),
    ("double_attention", (32,), {}, (9, 7)), ("cot", (32,), {}, (9, 11)),
    ("involution", (32, 32, 3, 2), {"group_channels": 8}, (9, 11)),
    ("global_filter", (32,), {"h": 9, "w": 6}, (9, 11)), ("s2_attention", (32,), {}, (9, 11)),
    ("danet", (32,), {}, (9, 11)), ("emsa", (32,), {}, (9, 11)),
    ("mobilevit_attention", (32,), {"transformer_dim": 32, "num_heads": 4}, (9, 11)),
    ("mobilevitv2_attention", (32,), {}, (9, 11)), ("cond_conv", (16, 32, 3, 2), {}, (9, 11)),
    ("dynamic_conv", (16, 32, 3, 1), {}, (9, 11)), ("deformable_conv", (16, 32, 3, 2), {}, (9, 11)),
    ("repmlp_block", (16, (12, 12)), {"partition": (6, 6)}, (12, 12)),
    ("smlp_block", (16,), {"size": 12}, (12, 12)),
    ("weighted_permute_mlp", (24,), {"size": 8}, (8, 8)),
]


@pytest.mark.parametrize("name,args,kwargs,size", LAYOUT_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(LAYOUT_CASES)])
@pytest.mark.parametrize("training", [False, True])
def test_blocks_put_results_back_in_the_input_layout(name, args, kwargs, size, training):
    """Channels-last input and convolution weights (a fused CPU network) against NCHW: the same values and
    gradients (float64), each output in its input's layout."""
    torch.manual_seed(0)
    m = _randomize(vb.create_block(name, *args, **kwargs), scale=0.3).double().train(training)
    m_cl = vb.to_channels_last(copy.deepcopy(m))
    x = torch.randn(2, args[0], *size, dtype=torch.float64)
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    y, y_cl = m(x), m_cl(x_cl)
    assert y.is_contiguous() and is_channels_last(y_cl), (y.stride(), y_cl.stride())
    torch.testing.assert_close(y_cl, y, rtol=1e-10, atol=1e-12)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y_cl, [x_cl, *m_cl.parameters()], g, allow_unused=True)
    want = torch.autograd.grad(y, [x, *m.parameters()], g, allow_unused=True)
    for a, b in zip(got, want):
        assert (a is None) == (b is None)
        if b is not None:  # (a gradient summed over many terms: rounding relative to its largest entry)
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10 * max(1.0, b.abs().max().item()))


def test_cat_channels_hands_back_dense_gradients_in_each_inputs_layout():
    """torch.cat's backward hands a channel slice of a channels-last gradient to each input (strided inside every
    pixel's channel vector: BatchNorm's backward runs ~5x slower on it); cat_channels gives the same values and
    gradients, each dense in its input's layout; NCHW inputs and no-grad calls are plain torch.cat."""
    from visionblocks.layers import cat_channels
    a = torch.randn(2, 3, 5, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    b = torch.randn(2, 5, 5, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = cat_channels([a, b])
    assert torch.equal(y, torch.cat([a, b], dim=1)) and is_channels_last(y)
    g = torch.randn_like(y)
    ga, gb = torch.autograd.grad(y, [a, b], g)
    assert torch.equal(ga, g[:, :3]) and torch.equal(gb, g[:, 3:])
    assert is_channels_last(ga) and is_channels_last(gb)
    plain_ga, _ = torch.autograd.grad(torch.cat([a, b], dim=1), [a, b], g)
    assert not plain_ga.is_contiguous(memory_format=torch.channels_last)          # what it avoids
    # second derivatives flow through it (its backward is made of differentiable ops)
    (ga2,) = torch.autograd.grad((cat_channels([a, b]) ** 2).sum(), a, create_graph=True)
    (gg,) = torch.autograd.grad(ga2.sum(), a)
    torch.testing.assert_close(gg, torch.full_like(a, 2.0))
    with torch.no_grad():
        assert torch.equal(cat_channels([a, b]), torch.cat([a, b], dim=1))


@pytest.mark.parametrize("channels_last", [False, True])
def test_ghost_conv_with_odd_output_is_dense_in_the_input_layout(channels_last):
    """ceil(n / r) r maps > n: the first n maps, stored densely (not a channel slice of the concatenation)."""
    torch.manual_seed(0)
    m = vb.create_block("ghost_conv", 8, 15).double().eval()
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    xx = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    with torch.no_grad():
        y = m(xx)
        y_ref = m.primary(x)
        ref = torch.cat([y_ref, m.cheap(y_ref)], dim=1)[:, :15]
    assert y.shape == (2, 15, 6, 5) and torch.allclose(y, ref, rtol=1e-12, atol=1e-12)
    assert is_channels_last(y) if channels_last else y.is_contiguous()
