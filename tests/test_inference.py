"""visionblocks.fuse: the inference form of every registered model gives the same eval outputs (float64,
BatchNorm statistics and affine parameters away from their initial values) with fewer BatchNorms."""
import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks import testing as T


def _bn_count(m):
    return sum(isinstance(x, nn.BatchNorm2d) for x in m.modules())


# the families issue 18 names (ResNet family, MobileNetV2, EfficientNet-B0), re-parameterized networks, a unit
# whose BN follows the addition (CoResNet), and networks with BN after the activation (nothing to fold there)
FUSED = ["resnet18", "resnet50", "resnext50_32x4d", "se_resnet50", "coconv_resnet50", "mobilenetv2",
         "efficientnet_b0", "repvgg_a0", "acnet_resnet18", "dbb_resnet18", "ghostnet_100", "mobilevit_xxs",
         "convmixer_768_32"]
FOLDS = {"resnet18", "resnet50", "resnext50_32x4d", "se_resnet50", "coconv_resnet50", "mobilenetv2",
         "efficientnet_b0", "ghostnet_100", "mobilevit_xxs"}


@pytest.mark.parametrize("name", FUSED)
def test_fuse_keeps_outputs(name):
    info = vb.model_info(name)
    torch.manual_seed(0)
    m = vb.create_model(name, num_classes=5).double().eval()
    T.randomize_bn_stats(m, seed=1)
    x = torch.randn(2, 3, *T.model_test_size(info), dtype=torch.float64)
    with torch.no_grad():
        ref = m(x)
        before = _bn_count(m)
        vb.fuse(m)
        got = m(x)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9 * ref.abs().max().item())
    if name in FOLDS:
        assert _bn_count(m) < before, f"{name}: no BatchNorm was folded"
    else:
        assert _bn_count(m) <= before


def test_fuse_refuses_training_mode_and_non_modules():
    m = vb.create_model("resnet18")
    with pytest.raises(RuntimeError, match="eval"):
        vb.fuse(m)
    assert _bn_count(m) == 20  # untouched
    with pytest.raises(TypeError, match="nn.Module"):
        vb.fuse("resnet18")


def test_fuse_folds_plain_sequential_pairs_and_leaves_others():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU(),
                        nn.BatchNorm2d(4)).eval()
    T.randomize_bn_stats(net, seed=3)
    x = torch.randn(1, 3, 8, 8)
    ref = net(x)
    vb.fuse(net)
    assert isinstance(net[1], nn.Identity) and isinstance(net[5], nn.BatchNorm2d)  # BN after ReLU stays
    torch.testing.assert_close(net(x), ref, rtol=1e-5, atol=1e-6)
