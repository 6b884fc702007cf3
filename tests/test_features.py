"""The feature-index rule and FeatureInfo (the model-level checks run in the model contract)."""
import pytest
import torch

import visionblocks as vb

from visionblocks.features import FeatureInfo, feature_take_indices


def test_take_indices_rules():
    assert feature_take_indices(5, None) == ([0, 1, 2, 3, 4], 4)
    assert feature_take_indices(5, 2) == ([3, 4], 4)
    assert feature_take_indices(5, (1, -1)) == ([1, 4], 4)
    assert feature_take_indices(5, [0]) == ([0], 0)


@pytest.mark.parametrize("bad", [(5,), (-6,), 0, 6, (), (1, 1)])
def test_take_indices_out_of_range_names_what_is_offered(bad):
    with pytest.raises(ValueError, match="offers 5 features|distinct|empty"):
        feature_take_indices(5, bad, "Net")


@pytest.mark.parametrize("bad", ["1", 1.0, (1.0,), True])
def test_take_indices_wrong_type(bad):
    with pytest.raises(TypeError):
        feature_take_indices(5, bad)


def test_feature_info_helpers():
    fi = FeatureInfo([dict(num_chs=64, reduction=2, module="stem"), dict(num_chs=256, reduction=4, module="s.0"),
                      dict(num_chs=512, reduction=8, module="s.1")])
    assert fi.channels() == [64, 256, 512] and fi.reduction() == [2, 4, 8]
    sub = fi.from_other((1, 2))
    assert sub.channels() == [256, 512] and sub.reduction(0) == 2 and sub.module_name() == ["s.0", "s.1"]
    with pytest.raises(ValueError, match="lacks 'module'"):
        FeatureInfo([dict(num_chs=1, reduction=1)])


def test_features_only_takes_output_fmt_and_keeps_the_data_config():
    # as timm's feature models: output_fmt through create_model, and the wrapped model's pretrained_cfg
    import torch

    import visionblocks as vb
    x = torch.randn(1, 3, 64, 64)
    nchw = vb.create_model("resnet18", features_only=True).eval()
    nhwc = vb.create_model("resnet18", features_only=True, output_fmt="NHWC").eval()
    nhwc.load_state_dict(nchw.state_dict())
    with torch.no_grad():
        for a, b in zip(nchw(x), nhwc(x)):
            assert torch.equal(a.permute(0, 2, 3, 1), b)
    assert vb.resolve_data_config(nchw) == vb.resolve_data_config("resnet18")
    with pytest.raises(ValueError, match="output_fmt is only meaningful with features_only=True"):
        vb.create_model("resnet18", output_fmt="NHWC")


def test_feature_list_net_sets_grad_checkpointing_of_its_model():
    # as timm's FeatureListNet: the extractor itself takes set_grad_checkpointing; gradients are unchanged
    torch.manual_seed(0)
    fe = vb.create_model("resnet18", features_only=True).double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    grads = []
    for enable in (False, True):
        fe.set_grad_checkpointing(enable)
        assert fe.model.grad_checkpointing is enable
        fe.zero_grad()
        sum(f.square().mean() for f in fe(x)).backward()
        grads.append([p.grad.clone() for p in fe.parameters()])
    assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(*grads))
    with pytest.raises(TypeError):
        fe.set_grad_checkpointing("yes")
