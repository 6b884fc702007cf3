"""Tests of :mod:`visionblocks.blocks.reparam.repmlp_block`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.testing import randomize_bn_stats

from _reference import _perturb


D = torch.float64
def _repmlp_reference(m, x):
    """Global, partition and local perceptrons with explicit loops over partitions."""
    B, C, H, W = x.shape
    (hp, wp), (h, w) = m.parts, m.partition
    O, g = m.out_channels, m.groups
    x = x.clone()
    if m.has_global:
        bn = m.gp_bn
        pooled = torch.stack([torch.stack([x[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w].mean((2, 3))
                                           for j in range(wp)], -1) for i in range(hp)], -2)  # (B, C, hp, wp)
        pooled = (pooled - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps) \
            * bn.weight[:, None, None] + bn.bias[:, None, None]
        v = torch.relu(pooled.reshape(B, -1) @ m.fc1.weight.T + m.fc1.bias) @ m.fc2.weight.T + m.fc2.bias
        v = v.reshape(B, C, hp, wp)
        for i in range(hp):
            for j in range(wp):
                x[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w] += v[:, :, i, j, None, None]
    # FC3 as a block-diagonal dense matrix (O*h*w, C*h*w)
    wg = m.fc3.weight[:, :, 0, 0]
    dense = torch.zeros(O * h * w, C * h * w, dtype=x.dtype)
    ro, ri = O * h * w // g, C * h * w // g
    for k in range(g):
        dense[k * ro:(k + 1) * ro, k * ri:(k + 1) * ri] = wg[k * ro:(k + 1) * ro]
    bn = m.fc3_bn
    out = torch.zeros(B, O, H, W, dtype=x.dtype)
    for i in range(hp):
        for j in range(wp):
            p = x[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w]
            y = p.reshape(B, -1) @ dense.T
            y = (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
            y = y.reshape(B, O, h, w)
            for br in m.local.values():
                c, b2 = br.conv, br.bn
                z = F.conv2d(p, c.weight, padding=c.padding, groups=g)  # zero padding inside the partition
                y = y + (z - b2.running_mean[:, None, None]) / torch.sqrt(b2.running_var[:, None, None] + b2.eps) \
                    * b2.weight[:, None, None] + b2.bias[:, None, None]
            out[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w] = y
    return out
def _repmlp(**kw):
    torch.manual_seed(0)
    m = vb.create_block("repmlp_block", 8, (6, 8), partition=(3, 4), **kw)
    return randomize_bn_stats(_perturb(m, 0.1), seed=1).eval()
@pytest.mark.parametrize("out_channels", [8, 12])
def test_repmlp_matches_partition_reference(out_channels):
    m = _repmlp(out_channels=out_channels).double()
    x = torch.randn(2, 8, 6, 8, dtype=D)
    out = m(x)
    assert out.shape == (2, out_channels, 6, 8)  # the requested output channels
    torch.testing.assert_close(out, _repmlp_reference(m, x), rtol=1e-10, atol=1e-10)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("out_channels", [8, 12])
def test_repmlp_reparameterize_is_exact(dtype, tol, out_channels):
    m = _repmlp(out_channels=out_channels).to(dtype)
    x = torch.randn(2, 8, 6, 8, dtype=dtype)
    with torch.no_grad():
        before = m(x)
        vb.reparameterize(m)
        after = m(x)
    assert m.is_reparameterized and len(m.local) == 0
    assert isinstance(m.fc3_bn, torch.nn.Identity) and isinstance(m.gp_bn, torch.nn.Identity)
    err = (after - before).abs().max() / before.abs().max()
    assert err < tol, err
    # idempotent, and a deploy-built block loads the folded weights
    vb.reparameterize(m)
    with torch.no_grad():
        assert torch.equal(m(x), after)
    d = vb.create_block("repmlp_block", 8, (6, 8), partition=(3, 4), out_channels=out_channels, deploy=True)
    d = d.to(dtype).eval()
    d.load_state_dict(m.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(d(x), after, rtol=0, atol=0)
def test_repmlp_refuses_training_mode_and_validates():
    m = vb.create_block("repmlp_block", 8, (6, 8), partition=(3, 4))
    with pytest.raises(RuntimeError):
        m.train().reparameterize()
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("repmlp_block", 8, (6, 8), partition=(4, 4))
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("repmlp_block", 6, (6, 8), partition=(3, 4), fc3_groups=4)
def test_repmlp_without_global_perceptron():
    torch.manual_seed(0)
    m = vb.create_block("repmlp_block", 4, (4, 4), partition=(4, 4), fc3_groups=2)
    m = randomize_bn_stats(_perturb(m, 0.1), seed=1).eval().double()
    x = torch.randn(2, 4, 4, 4, dtype=D)
    torch.testing.assert_close(m(x), _repmlp_reference(m, x), rtol=1e-10, atol=1e-10)
    ref = m(x)
    vb.reparameterize(m)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
