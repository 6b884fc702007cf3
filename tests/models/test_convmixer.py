"""Tests of :mod:`visionblocks.models.convmixer`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.testing import randomize_bn_stats

from _reference import _perturb_mlp_models, bn_eval as _bn


def test_convmixer_layer_matches_paper_equations():
    from visionblocks.models.convmixer import ConvMixerLayer
    torch.manual_seed(0)
    m = randomize_bn_stats(_perturb_mlp_models(ConvMixerLayer(6, 5, "gelu")), seed=3).eval().double()
    x = torch.randn(2, 6, 9, 7, dtype=torch.float64)
    # x = x + BN(GELU(DepthwiseConv(x)));  x = BN(GELU(PointwiseConv(x)))   (residual only around the depthwise)
    y = x + _bn(F.gelu(F.conv2d(x, m.dw.weight, m.dw.bias, padding=2, groups=6)), m.bn1)
    y = _bn(F.gelu(torch.einsum("oc,bchw->bohw", m.pw.weight[:, :, 0, 0], y) + m.pw.bias[:, None, None]), m.bn2)
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)
@pytest.mark.parametrize("k", [2, 4, 6])
def test_even_kernel_pads_like_same(k):
    """An even depthwise kernel pads (k-1)//2 on the left/top and k//2 on the right/bottom (PyTorch's
    padding="same", the authors' Conv2d(..., padding="same")): the residual add works and the output is the
    explicitly padded convolution."""
    from visionblocks.models.convmixer import ConvMixer, ConvMixerLayer
    torch.manual_seed(0)
    m = randomize_bn_stats(ConvMixerLayer(6, k, "gelu"), seed=1).eval().double()
    x = torch.randn(2, 6, 9, 8, dtype=torch.float64)
    lo, hi = (k - 1) // 2, k // 2
    dw = F.conv2d(F.pad(x, (lo, hi, lo, hi)), m.dw.weight, m.dw.bias, groups=6)
    torch.testing.assert_close(dw, F.conv2d(x, m.dw.weight, m.dw.bias, padding="same", groups=6), rtol=0, atol=0)
    y = x + _bn(F.gelu(dw), m.bn1)
    y = _bn(F.gelu(F.conv2d(y, m.pw.weight, m.pw.bias)), m.bn2)
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)
    net = ConvMixer(8, 2, kernel_size=k, patch_size=4, num_classes=5).eval()
    assert net(torch.randn(1, 3, 32, 28)).shape == (1, 5)
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
