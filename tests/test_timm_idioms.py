"""What code written for timm passes to every model: create_model's global_pool and output_stride, a
drop_path_rate a model has no place for (said, not silently ignored)."""
import warnings

import pytest
import torch

import visionblocks as vb


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0", "mixer_s16", "ghostnet_100", "volo_d1"])
def test_global_pool_is_taken_by_every_model_and_keeps_the_classifier(name):
    """Only VOLO took it: create_model("resnet50", num_classes=0, global_pool="") was a TypeError."""
    info = vb.model_info(name)
    h, w = info.test_input_size or info.input_size[1:]
    x = torch.randn(2, 3, h, w)
    torch.manual_seed(0)
    plain = vb.create_model(name, num_classes=0).eval()
    torch.manual_seed(0)
    unpooled = vb.create_model(name, num_classes=0, global_pool="").eval()
    with torch.no_grad():
        want = plain.forward_features(x) if name != "ghostnet_100" else \
            plain.act(plain.conv_head(plain.forward_features(x)))       # GhostNet's head conv runs on the map
        assert torch.equal(unpooled(x), want)
    torch.manual_seed(0)
    ref = vb.create_model(name, num_classes=5)
    torch.manual_seed(0)
    other = vb.create_model(name, num_classes=5, global_pool="avg")
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in ref.state_dict().items())   # same weights
    with pytest.raises(ValueError, match="global_pool"):
        vb.create_model(name, num_classes=5, global_pool="")   # a classifier needs pooled features


def test_max_pooling_by_global_pool():
    torch.manual_seed(0)
    m = vb.create_model("resnet18", num_classes=0, global_pool="max").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), m.forward_features(x).amax((2, 3)))


@pytest.mark.parametrize("name, native", [("repvgg_a0", 32), ("mobilevit_s", 32), ("mixer_s16", 16),
                                          ("resnet18", 32)])
def test_the_native_output_stride_is_accepted_as_asking_nothing(name, native):
    """timm pipelines pass output_stride=32 to every model: a model without dilation refused even its own."""
    torch.manual_seed(0)
    a = vb.create_model(name, output_stride=native)
    torch.manual_seed(0)
    b = vb.create_model(name)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    if name != "resnet18":
        with pytest.raises(ValueError, match=f"only its native output stride, {native}"):
            vb.create_model(name, output_stride=native // 2)


@pytest.mark.parametrize("name", ["repvgg_a0", "parnet_s"])
def test_a_drop_path_rate_with_no_residual_branch_to_drop_is_said(name):
    with pytest.warns(UserWarning, match="no residual branch to drop: drop_path_rate=0.1 applies to nothing"):
        vb.create_model(name, drop_path_rate=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vb.create_model(name, drop_path_rate=0.0)


def test_features_only_names_modules_its_get_submodule_finds():
    """timm's feature extractors resolve feature_info.module_name() on themselves; ours named the wrapped
    model's paths (AttributeError: FeatureListNet has no attribute 'stem')."""
    fo = vb.create_model("resnet18", features_only=True)
    names = fo.feature_info.module_name()
    assert names[1] == "model.stages.0" and [fo.get_submodule(n) for n in names]
