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
