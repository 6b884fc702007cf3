"""Tests of the MLP models beyond the model contract: RepMLPNet's locality injection is exact, its block matches
a reference written from the paper's equations, and the fixed-size models reject other sizes clearly."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.models.repmlpnet import RepMLPNet, RepMLPNetBlock
from visionblocks.testing import randomize_bn_stats
from _reference import bn_eval as _bn


def _perturb(m, scale=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return m



def test_repmlpnet_block_matches_equations():
    torch.manual_seed(0)
    m = randomize_bn_stats(_perturb(RepMLPNetBlock(8, (3, 2), num_sharesets=4)), seed=2).eval().double()
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
    net = randomize_bn_stats(_perturb(net), seed=1).eval().to(dtype)
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


@pytest.mark.parametrize("name", ["mixer_s16", "resmlp_12", "gmlp_ti16", "vip_s7", "smlpnet_t", "repmlpnet_t224"])
def test_fixed_size_models_reject_other_sizes(name):
    with torch.device("meta"):
        m = vb.create_model(name)
    with pytest.raises(ValueError, match="size|tokens"):
        m(torch.empty(1, 3, 192, 192, device="meta"))


def test_convmixer_layer_matches_paper_equations():
    from visionblocks.models.convmixer import ConvMixerLayer
    torch.manual_seed(0)
    m = randomize_bn_stats(_perturb(ConvMixerLayer(6, 5, "gelu")), seed=3).eval().double()
    x = torch.randn(2, 6, 9, 7, dtype=torch.float64)
    # x = x + BN(GELU(DepthwiseConv(x)));  x = BN(GELU(PointwiseConv(x)))   (residual only around the depthwise)
    y = x + _bn(F.gelu(F.conv2d(x, m.dw.weight, m.dw.bias, padding=2, groups=6)), m.bn1)
    y = _bn(F.gelu(torch.einsum("oc,bchw->bohw", m.pw.weight[:, :, 0, 0], y) + m.pw.bias[:, None, None]), m.bn2)
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)


def test_convmixer_configurations():
    with torch.device("meta"):
        a, b = vb.create_model("convmixer_1536_20"), vb.create_model("convmixer_768_32")
    assert len(a.blocks) == 20 and a.blocks[0].dw.kernel_size == (9, 9) and isinstance(a.blocks[0].act1, torch.nn.GELU)
    assert len(b.blocks) == 32 and b.blocks[0].dw.kernel_size == (7, 7) and isinstance(b.blocks[0].act1, torch.nn.ReLU)
    assert a.stem[0].kernel_size == (7, 7) == a.stem[0].stride


def test_convmixer_features_and_drop_path():
    """Isotropic: one feature per layer at the patch reduction; stochastic depth drops only the residual
    depthwise branch (the pointwise mixing always runs)."""
    from visionblocks.models.convmixer import ConvMixer, ConvMixerLayer
    m = ConvMixer(16, 3, 5, 4, num_classes=0).eval()
    assert m.feature_info.channels() == [16] * 3 and m.feature_info.reduction() == [4] * 3
    x = torch.randn(1, 3, 30, 26)
    with torch.no_grad():
        feats = m.forward_intermediates(x, intermediates_only=True)
        t = m.stem(x)
        for blk, f in zip(m.blocks, feats):
            t = blk(t)
            torch.testing.assert_close(f, t, rtol=0, atol=0)
    rates = [b.drop_path.drop_prob for b in ConvMixer(16, 5, drop_path_rate=0.2).blocks[1:]]
    assert rates == pytest.approx([0.05, 0.1, 0.15, 0.2])
    layer = ConvMixerLayer(4, 3, drop_path=0.5).train()
    layer.bn1.eval(), layer.bn2.eval()  # running statistics: samples independent
    x = torch.randn(64, 4, 5, 5)
    torch.manual_seed(0)
    with torch.no_grad():
        y = layer(x)
        mix = lambda t: layer.bn2(layer.act2(layer.pw(t)))  # noqa: E731
        branch = layer.bn1(layer.act1(layer.dw(x)))
        dropped, kept = mix(x), mix(x + 2 * branch)
    is_dropped = [torch.allclose(y[i], dropped[i]) for i in range(64)]
    assert 10 < sum(is_dropped) < 54
    for i in range(64):
        torch.testing.assert_close(y[i], dropped[i] if is_dropped[i] else kept[i])


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
