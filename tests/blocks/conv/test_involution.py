"""Tests of :mod:`visionblocks.blocks.conv.involution`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.conv.involution import Involution
from visionblocks.testing import randomize_bn_stats


D = torch.float64
def involution_reference(m, x):
    """The paper's equations with explicit loops over output positions (float64, eval-mode BN)."""
    b, c, h, w = x.shape
    k, s, g = m.kernel_size, m.stride, m.groups
    ho, wo = -(-h // s), -(-w // s)
    red, bn, span = m.reduce.conv, m.reduce.bn, m.span
    xp = F.pad(x, (k // 2,) * 4)
    y = torch.zeros(b, c, ho, wo, dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            pooled = x[:, :, s * i:s * i + s, s * j:s * j + s].mean((2, 3))  # average of the valid pixels
            z = pooled @ red.weight[:, :, 0, 0].T
            z = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
            kern = F.relu(z) @ span.weight[:, :, 0, 0].T + span.bias  # (B, G*K*K)
            kern = kern.view(b, g, k, k)
            for ch in range(c):
                gi = ch // m.group_channels
                patch = xp[:, ch, s * i:s * i + k, s * j:s * j + k]
                y[:, ch, i, j] = (kern[:, gi] * patch).sum((1, 2))
    return y
# NCHW input: output rows of 6 and 4 run the NCHW form, rows of 3 (shorter than the group of 4 channels) the
# channels-last form on a copy; channels-last input: the channels-last form
@pytest.mark.parametrize("stride,size", [(1, (7, 6)), (2, (9, 7)), (2, (8, 5)), (2, (1, 5)), (3, (7, 8))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_involution_matches_loop(stride, size, channels_last):
    m = randomize_bn_stats(vb.create_block("involution", 8, 8, 3, stride, group_channels=4, reduction=2))
    m = m.double().eval()
    x = torch.randn(2, 8, *size, dtype=D)
    y = m(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert y.shape == (2, 8, -(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(y, involution_reference(m, x), rtol=1e-10, atol=1e-10)
def test_involution_rednet_defaults_and_validation():
    m = vb.create_block("involution", 64, 64)
    assert (m.kernel_size, m.groups, m.group_channels) == (7, 4, 16)
    assert m.reduce.conv.out_channels == 16 and m.span.out_channels == 49 * 4
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("involution", 24, 24)
    with pytest.raises(ValueError, match="must equal"):
        vb.create_block("involution", 32, 64)


def test_rednet_uses_involution_with_stride_on_it():
    m = vb.create_model("rednet26")
    invs = [mod for mod in m.modules() if isinstance(mod, Involution)]
    assert len(invs) == 1 + 8 and invs[0].kernel_size == 3 and all(i.kernel_size == 7 for i in invs[1:])
    assert [i.stride for i in invs[1:]] == [1, 2, 1, 2, 1, 1, 1, 2]
    assert not any(isinstance(mod, torch.nn.Conv2d) and mod.kernel_size == (3, 3) for mod in m.stages.modules())
    with torch.no_grad():
        assert m.eval()(torch.randn(1, 3, 45, 39)).shape == (1, 1000)


def test_involution_short_rows_through_channels_last_form_same_values_and_gradients():
    """NCHW maps whose output rows are shorter than a group (7 < 16) run the channels-last form on a copy; the
    values and every gradient are the NCHW form's (``_aggregate`` on the NCHW map), in training mode."""
    torch.manual_seed(0)
    m = vb.create_block("involution", 32, 32, 7, 2).double().train()
    x = torch.randn(2, 32, 14, 13, dtype=D, requires_grad=True)
    y, y_nchw = m(x), m._aggregate(x)
    assert y.is_contiguous() and torch.allclose(y, y_nchw, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, *m.parameters()], g)
    want = torch.autograd.grad(y_nchw, [x, *m.parameters()], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
