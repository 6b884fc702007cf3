"""SE, CBAM and ECA against their papers' equations, computed by hand in float64."""
import math

import pytest
import torch

import visionblocks as vb
from visionblocks.blocks.attention.eca import eca_kernel_size
from visionblocks.testing import randomize_bn_stats


def test_se_gate_equals_sigmoid_w2_relu_w1_avgpool():
    m = vb.create_block("se", 32).double()
    x = torch.randn(3, 32, 7, 5, dtype=torch.float64)
    W1, b1 = m.fc1.weight[:, :, 0, 0], m.fc1.bias
    W2, b2 = m.fc2.weight[:, :, 0, 0], m.fc2.bias
    assert W1.shape == (2, 32)  # C / r with r = 16
    z = x.sum((2, 3)) / 35.0
    gate = torch.sigmoid(torch.relu(z @ W1.T + b1) @ W2.T + b2)
    torch.testing.assert_close(m(x), x * gate[:, :, None, None], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels,k", [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7), (16, 3)])
def test_eca_adaptive_kernel_size(channels, k):
    t = int(abs((math.log(channels, 2) + 1) / 2))
    assert eca_kernel_size(channels) == (t if t % 2 else t + 1) == k
    assert vb.create_block("eca", channels).conv.kernel_size == (k,)


def test_eca_is_a_1d_conv_across_pooled_channels():
    m = vb.create_block("eca", 64).double()
    x = torch.randn(2, 64, 6, 6, dtype=torch.float64)
    w = m.conv.weight.flatten()  # k = 3
    y = x.mean((2, 3))
    pad = torch.cat([y.new_zeros(2, 1), y, y.new_zeros(2, 1)], 1)
    conv = torch.stack([sum(w[j] * pad[:, c + j] for j in range(3)) for c in range(64)], 1)
    torch.testing.assert_close(m(x), x * torch.sigmoid(conv)[:, :, None, None], rtol=1e-12, atol=1e-12)


def test_cbam_channel_then_spatial_gate():
    m = randomize_bn_stats(vb.create_block("cbam", 32)).double().eval()
    x = torch.randn(2, 32, 9, 7, dtype=torch.float64)
    mlp = m.channel_gate.mlp
    W1, b1, W2, b2 = mlp.fc1.weight[:, :, 0, 0], mlp.fc1.bias, mlp.fc2.weight[:, :, 0, 0], mlp.fc2.bias
    f = lambda v: torch.relu(v @ W1.T + b1) @ W2.T + b2  # noqa: E731
    mc = torch.sigmoid(f(x.mean((2, 3))) + f(x.flatten(2).max(2).values))
    x1 = x * mc[:, :, None, None]
    s = torch.stack([x1.mean(1), x1.max(1).values], 1)  # (B, 2, H, W): [avg; max]
    w = m.spatial_gate.conv.weight[0]  # (2, 7, 7)
    sp = torch.nn.functional.pad(s, (3, 3, 3, 3))
    conv = torch.zeros(2, 9, 7, dtype=torch.float64)
    for i in range(9):
        for j in range(7):
            conv[:, i, j] = (sp[:, :, i:i + 7, j:j + 7] * w).sum((1, 2, 3))
    bn = m.spatial_gate.bn
    ms = torch.sigmoid((conv - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias)
    torch.testing.assert_close(m(x), x1 * ms[:, None], rtol=1e-10, atol=1e-10)


def test_constructor_validation():
    with pytest.raises(ValueError, match="channels must be positive"):
        vb.create_block("se", 0)
    with pytest.raises(TypeError, match="channels must be an int"):
        vb.create_block("cbam", 3.5)
    with pytest.raises(ValueError, match="odd"):
        vb.create_block("eca", 64, kernel_size=4)
