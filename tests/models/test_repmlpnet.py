"""Tests of :mod:`visionblocks.models.repmlpnet`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.models.repmlpnet import RepMLPNet, RepMLPNetBlock
from visionblocks.testing import randomize_bn_stats

from _reference import _perturb_mlp_models


def test_repmlpnet_block_matches_equations():
    torch.manual_seed(0)
    m = randomize_bn_stats(_perturb_mlp_models(RepMLPNetBlock(8, (3, 2), num_sharesets=4)), seed=2).eval().double()
    x = torch.randn(2, 8, 6, 4, dtype=torch.float64)
    gv = torch.sigmoid(F.conv2d(torch.relu(F.conv2d(x.mean((2, 3), keepdim=True), m.gp_fc1.weight, m.gp_fc1.bias)),
                                m.gp_fc2.weight, m.gp_fc2.bias))
    out = torch.zeros_like(x)
    wfc = m.fc3.weight[:, :, 0, 0].reshape(4, 6, 6)  # one (h*w x h*w) matrix per share-set
    cps = 8 // 4
    for i in range(2):
        for j in range(2):
            p = x[:, :, i * 3:(i + 1) * 3, j * 2:(j + 1) * 2]          # (B, C, 3, 2)
            for c in range(8):
                s = c % 4  # channel c of a partition belongs to share-set c mod S (C/S groups of S channels)
                y = p[:, c].reshape(2, 6) @ wfc[s].T
                bn = m.fc3_bn
                y = (y - bn.running_mean[s]) / torch.sqrt(bn.running_var[s] + bn.eps) * bn.weight[s] + bn.bias[s]
                y = y.reshape(2, 3, 2)
                for br in m.local.values():
                    z = F.conv2d(p[:, c:c + 1], br.conv.weight[s:s + 1], padding=br.conv.padding)[:, 0]
                    b2 = br.bn
                    y = y + (z - b2.running_mean[s]) / torch.sqrt(b2.running_var[s] + b2.eps) * b2.weight[s] + b2.bias[s]
                out[:, c, i * 3:(i + 1) * 3, j * 2:(j + 1) * 2] = y
    assert cps == 2
    torch.testing.assert_close(m(x), out * gv, rtol=1e-10, atol=1e-10)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_repmlpnet_locality_injection_is_exact(dtype, tol):
    torch.manual_seed(0)
    net = RepMLPNet(channels=(8, 16), blocks=(1, 1), partitions=(4, 2), sharesets=(2, 4), num_classes=5)
    net = randomize_bn_stats(_perturb_mlp_models(net), seed=1).eval().to(dtype)
    x = torch.randn(2, 3, 32, 32, dtype=dtype)
    with torch.no_grad():
        before = net(x)
        vb.reparameterize(net)
        after = net(x)
    assert all(m.is_reparameterized and len(m.local) == 0 for m in net.modules() if isinstance(m, RepMLPNetBlock))
    assert ((after - before).abs().max() / before.abs().max()) < tol
    deployed = RepMLPNet(channels=(8, 16), blocks=(1, 1), partitions=(4, 2), sharesets=(2, 4), num_classes=5,
                         deploy=True).eval().to(dtype)
    deployed.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(deployed(x), after)
def test_repmlpnet_features_per_stage_and_final_norm():
    m = RepMLPNet(channels=(8, 16), blocks=(1, 1), partitions=(4, 2), sharesets=(2, 4), num_classes=5).eval()
    m = randomize_bn_stats(m)
    assert m.feature_info.channels() == [8, 16] and m.feature_info.reduction() == [4, 8]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        final, feats = m.forward_intermediates(x)
        normed = m.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)[0]
        torch.testing.assert_close(final, m.norm(m.features(x)))
    torch.testing.assert_close(normed, m.norm(feats[-1]))
    with pytest.raises(ValueError, match="multiple of 16"):
        m.forward_intermediates(torch.randn(1, 3, 24, 24))
