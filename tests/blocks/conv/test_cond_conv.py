"""Tests of :mod:`visionblocks.blocks.conv.cond_conv`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb

from _reference import _expert_sum


D = torch.float64
def test_cond_conv_sigmoid_routing_is_not_normalized_and_special_cases():
    m = vb.create_block("cond_conv", 6, 5, 3, num_experts=8).double()
    x = torch.randn(4, 6, 7, 9, dtype=D)
    r = m.route(x)
    assert r.shape == (4, 8) and (r > 0).all() and (r < 1).all()
    assert not torch.allclose(r.sum(1), torch.ones(4, dtype=D))  # independent sigmoids, not a softmax
    one = vb.create_block("cond_conv", 6, 5, 3, num_experts=1).double()  # K=1, r=1: a plain conv
    torch.testing.assert_close(one(x, torch.ones(4, 1, dtype=D)), F.conv2d(x, one.weight[0], padding=1),
                               rtol=1e-10, atol=1e-10)
    with torch.no_grad():  # identical experts: (sum r) * conv
        m.weight.copy_(m.weight[:1].expand_as(m.weight))
    torch.testing.assert_close(m(x), r.sum(1).view(-1, 1, 1, 1) * F.conv2d(x, m.weight[0], padding=1),
                               rtol=1e-10, atol=1e-10)
    shared = vb.create_block("cond_conv", 6, 6, 3, groups=6, routing=False).double()  # depthwise, external routing
    assert shared.routing is None
    y = shared(x, r)
    torch.testing.assert_close(y, _expert_sum(shared, x, r), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="routing"):
        shared(x)


@pytest.mark.parametrize("groups,stride,padding,dilation,bias", [(1, 1, 1, 1, True), (2, 2, 2, 2, False),
                                                                  (4, 2, 0, 1, True)])
def test_per_sample_conv_export_form_equals_a_convolution_per_sample(groups, stride, padding, dilation, bias):
    """The form a dynamic-batch export runs (unfolded windows times each sample's kernel, group by group) is each
    sample's own ``F.conv2d`` (float64), at odd sizes; as is the batch-as-groups form."""
    from visionblocks.blocks.conv._per_sample import _per_sample_unfolded, per_sample_conv2d
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, 11, 9, generator=g, dtype=torch.float64)
    w = torch.randn(3, 12, 8 // groups, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(3, 12, generator=g, dtype=torch.float64) if bias else None
    args = ((stride, stride), (padding, padding), (dilation, dilation), groups)
    want = torch.cat([F.conv2d(x[i:i + 1], w[i], None if b is None else b[i], *args) for i in range(3)])
    torch.testing.assert_close(_per_sample_unfolded(x, w, b, *args), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(per_sample_conv2d(x, w, b, *args), want, rtol=1e-12, atol=1e-12)
