"""Tests of :mod:`visionblocks.blocks.conv.dynamic_conv`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.conv.dynamic_conv import dynamic_conv_temperature, set_dynamic_conv_temperature

from _reference import _expert_sum


D = torch.float64
def _dy_attention(m, x):
    z = F.relu(x.mean((2, 3)) @ m.mlp.fc1.weight.T + m.mlp.fc1.bias) @ m.mlp.fc2.weight.T + m.mlp.fc2.bias
    return torch.softmax(z / float(m.temperature), dim=1)
def _cond_routing(m, x):
    return torch.sigmoid(x.mean((2, 3)) @ m.routing.weight.T + m.routing.bias)
def _per_sample_loop(m, x, r):
    outs = []
    for b in range(x.shape[0]):
        w = (r[b].view(-1, 1, 1, 1, 1) * m.weight).sum(0)
        bias = (r[b].view(-1, 1) * m.bias).sum(0) if m.bias is not None else None
        outs.append(F.conv2d(x[b:b + 1], w, bias, m.stride, m.padding, m.dilation, m.groups))
    return torch.cat(outs)
@pytest.mark.parametrize("name", ["dynamic_conv", "cond_conv"])
@pytest.mark.parametrize("stride,groups,size", [(1, 1, (8, 7)), (2, 2, (9, 7)), (2, 1, (1, 6)), (2, 4, (5, 1))])
def test_grouped_trick_equals_loop_and_expert_mixture(name, stride, groups, size):
    kw = {"bias": True} if name == "cond_conv" else {"temperature": 2.0}
    m = vb.create_block(name, 8, 12, 3, stride, groups=groups, **kw).double()
    x = torch.randn(3, 8, *size, dtype=D)
    r = _dy_attention(m, x) if name == "dynamic_conv" else _cond_routing(m, x)
    y = m(x)
    assert y.shape == (3, 12, -(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(y, _per_sample_loop(m, x, r), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(y, _expert_sum(m, x, r), rtol=1e-10, atol=1e-10)
def test_dynamic_attention_softmax_temperature_and_identical_kernels():
    m = vb.create_block("dynamic_conv", 6, 5, 3).double()
    x = torch.randn(4, 6, 7, 9, dtype=D)
    pi = m.attention(x)
    torch.testing.assert_close(pi.sum(1), torch.ones(4, dtype=D), rtol=0, atol=1e-12)
    torch.testing.assert_close(pi, _dy_attention(m, x), rtol=1e-12, atol=1e-12)
    m.set_temperature(1e12)  # tau -> infinity: uniform attention
    torch.testing.assert_close(m.attention(x), torch.full((4, 4), 0.25, dtype=D), rtol=0, atol=1e-9)
    m.set_temperature(1.0)
    with torch.no_grad():  # identical kernels: exactly that convolution, since the attention sums to 1
        m.weight.copy_(m.weight[:1].expand_as(m.weight))
        m.bias.copy_(m.bias[:1].expand_as(m.bias))
    torch.testing.assert_close(m(x), F.conv2d(x, m.weight[0], m.bias[0], padding=1), rtol=1e-10, atol=1e-10)
def test_dynamic_temperature_schedule_and_eval_uses_it():
    assert dynamic_conv_temperature(0) == 30.0 and dynamic_conv_temperature(10) == 1.0
    assert dynamic_conv_temperature(5) == pytest.approx(15.5) and dynamic_conv_temperature(40) == 1.0
    net = torch.nn.Sequential(vb.create_block("dynamic_conv", 4, 4), vb.create_block("dynamic_conv", 4, 4)).double()
    set_dynamic_conv_temperature(net, dynamic_conv_temperature(7))
    assert all(float(b.temperature) == pytest.approx(9.7) for b in net)
    x = torch.randn(2, 4, 6, 6, dtype=D)
    m = net[0]
    y_train = m.train()(x)
    m.eval()
    torch.testing.assert_close(m.attention(x), _dy_attention(m, x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m(x), y_train, rtol=1e-12, atol=1e-12)  # same tau in eval (no silent tau=1)
    fresh = vb.create_block("dynamic_conv", 4, 4).double()
    fresh.load_state_dict(m.state_dict())
    assert float(fresh.temperature) == pytest.approx(9.7)
    with pytest.raises(ValueError, match="temperature"):
        m.set_temperature(0)
