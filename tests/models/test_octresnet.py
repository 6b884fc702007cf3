"""Tests of :mod:`visionblocks.models.octresnet`."""
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.testing import count_params

from _reference import _meta_conv_variant_models


RESNET50_PARAMS = 25_557_032
def test_octresnet50_frequency_layout():
    m = _meta_conv_variant_models("octresnet50")
    assert count_params(m) == RESNET50_PARAMS           # octave convolutions keep the kernel count
    for s, stage in enumerate(m.stages):
        for i, blk in enumerate(stage):
            convs = [blk.conv1.conv, blk.conv2.conv, blk.conv3.conv]
            first_in = 0.0 if (s, i) == (0, 0) else (0.5 if s < 3 or i == 0 else 0.0)
            inner = 0.5 if s < 3 else 0.0
            assert convs[0].alpha_in == first_in and all(c.alpha_out == inner for c in convs)
            assert all(c.alpha_in == inner for c in convs[1:])
            assert blk.conv2.conv.stride == (2 if i == 0 and s > 0 else 1)
def test_octresnet50_runs_at_odd_size():
    m = vb.create_model("octresnet50", num_classes=5).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 21, 19)).shape == (1, 5)
def test_octresnet50_features_join_the_high_and_low_parts():
    """An octave stage's feature is its high part with the low part (nearest-upsampled) after it, all 4 planes
    channels at the high part's reduction; the last stage is single-frequency."""
    m = vb.create_model("octresnet50").eval()
    assert m.feature_info.channels() == [64, 256, 512, 1024, 2048]
    x = torch.randn(1, 3, 42, 38)
    with torch.no_grad():
        feats = m.forward_intermediates(x, intermediates_only=True)
        t = m.stem[1](m.stem[0](x))
        pairs = []
        for stage in m.stages:
            t = stage(t)
            pairs.append(t)
    for (y_h, y_l), f in zip(pairs, feats[1:]):
        assert f.shape[-2:] == y_h.shape[-2:]
        torch.testing.assert_close(f[:, :y_h.shape[1]], y_h, rtol=0, atol=0)
        if y_l is not None:
            assert y_l.shape[-1] == (y_h.shape[-1] + 1) // 2 or y_l.shape[-1] == y_h.shape[-1] // 2
            up = F.interpolate(y_l, size=y_h.shape[-2:], mode="nearest")
            torch.testing.assert_close(f[:, y_h.shape[1]:], up, rtol=0, atol=0)
        else:
            assert f.shape[1] == y_h.shape[1]
def test_octresnet_drop_path_drops_both_parts_of_a_sample_together():
    from visionblocks.models.octresnet import OctBottleneck, OctDropPath
    blk = OctBottleneck(64, 16, drop_path=0.5).train()
    assert isinstance(blk.drop_path, OctDropPath)
    y_h, y_l = torch.randn(64, 32, 4, 4), torch.randn(64, 32, 2, 2)
    torch.manual_seed(0)
    d_h, d_l = blk.drop_path((y_h, y_l))
    kept_h = d_h.flatten(1).abs().sum(1) > 0
    kept_l = d_l.flatten(1).abs().sum(1) > 0
    assert torch.equal(kept_h, kept_l) and 10 < int(kept_h.sum()) < 54
    torch.testing.assert_close(d_h[kept_h], 2 * y_h[kept_h])
    rates = [b.drop_path.drop_prob for s in vb.create_model("octresnet50", drop_path_rate=0.2).stages for b in s
             if isinstance(b.drop_path, OctDropPath)]
    assert len(rates) == 15 and abs(rates[-1] - 0.2) < 1e-12  # the first block's rate is 0: no DropPath
