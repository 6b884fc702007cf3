"""Tests of :mod:`visionblocks.models.ghostnet`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.models.ghostnet import GhostBottleneck


def test_ghostnet_head_and_reset_classifier():
    """GhostNet's head: pooling, 1x1 conv to 1280 + ReLU, dropout, head.fc; global_pool sets the pooling.  As timm's:
    num_features is what forward_features gives (960; it said 1280, and a neck sized by it was wrong),
    head_hidden_size the pre-logits' 1280."""
    m = vb.create_model("ghostnet_100", num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    assert m.get_classifier() is m.head.fc and m.num_features == 960 and m.head_hidden_size == 1280
    assert m.get_classifier().in_features == 1280
    with torch.no_grad():
        feats = m.forward_features(x)
        assert feats.shape[1] == 960
        assert m.forward_head(feats, pre_logits=True).shape == (2, 1280)
        m.reset_classifier(0, global_pool="max")
        torch.testing.assert_close(m(x), F.relu(m.conv_head(feats.amax((2, 3), keepdim=True))).flatten(1))
        m.reset_classifier(0, global_pool="")
        assert m(x).shape == (2, 1280, 2, 2)
        m.reset_classifier(4, global_pool="avg")
        assert m(x).shape == (2, 4) and m.num_classes == 4
    with pytest.raises(ValueError, match="global_pool"):
        m.reset_classifier(3, global_pool="")
    with pytest.raises(ValueError, match="global_pool"):
        m.reset_classifier(3, global_pool="mean")
def test_ghost_bottleneck_drop_path_drops_the_residual_branch():
    m = GhostBottleneck(8, 24, 8, drop_path=0.5).train()
    assert m.drop_path.drop_prob == 0.5
    x = torch.randn(64, 8, 5, 5)
    torch.manual_seed(0)
    y = m(x)
    branch = m.ghost2(m.attn(m.conv_dw(m.ghost1(x))))
    dropped = [torch.allclose(y[i], x[i]) for i in range(64)]
    assert 10 < sum(dropped) < 54  # whole samples keep only the shortcut
    kept = [i for i in range(64) if not dropped[i]]
    torch.testing.assert_close(y[kept], x[kept] + 2 * branch[kept])
    rates = [b.drop_path.drop_prob if b.drop_path.__class__.__name__ == "DropPath" else 0.0
             for b in vb.create_model("ghostnet_100", drop_path_rate=0.15).blocks[:16]]
    assert rates[0] == 0.0 and abs(rates[-1] - 0.15) < 1e-12 and rates == sorted(rates)


def test_ghostnet_create_model_global_pool_pools_before_the_head_convolution():
    """create_model(global_pool=) set only the head's pooling, after GhostNet had pooled by average before its 1280
    convolution: "max" was silently the average, "" a 1x1 map."""
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(0)
    m = vb.create_model("ghostnet_100", num_classes=0, global_pool="max").eval()
    with torch.no_grad():
        feats = m.forward_features(x)
        torch.testing.assert_close(m(x), F.relu(m.conv_head(feats.amax((2, 3), keepdim=True))).flatten(1))
        m = vb.create_model("ghostnet_100", num_classes=0, global_pool="").eval()
        assert m(x).shape == (2, 1280, 2, 2)
