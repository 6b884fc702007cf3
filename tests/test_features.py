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


def test_timm_attribute_names():
    """default_cfg (timm's older name of pretrained_cfg) on models and feature extractors, head_hidden_size."""
    m = vb.create_model("resnet18", num_classes=3)
    assert m.default_cfg == m.pretrained_cfg and m.default_cfg["num_classes"] == 3
    assert m.head_hidden_size == 512 == m.forward_head(torch.randn(1, 512, 2, 2), pre_logits=True).shape[1]
    fx = vb.create_model("resnet18", features_only=True, out_indices=(1, 2))
    assert fx.default_cfg == fx.pretrained_cfg
    g = vb.create_model("ghostnet_100")
    assert g.head_hidden_size == 1280 == g.forward_head(torch.randn(1, 960, 2, 2), pre_logits=True).shape[1]


def test_group_matcher_orders_stem_blocks_head():
    """group_matcher (timm's layer-wise decay groups): every parameter of the stem in the stem group, each block
    of ResNet-50's stages a group in forward order (fine) or one per stage (coarse), the classifier in none."""
    import re
    m = vb.create_model("resnet50")
    for coarse, count in ((False, 16), (True, 4)):
        g = m.group_matcher(coarse=coarse)
        stem = [re.compile(p) for p, _ in g["stem"]]
        blocks = [(re.compile(p), o) for p, o in g["blocks"]]

        def group(name):
            if any(p.match(name) for p in stem):
                return ("stem",)
            hits = [o for p, o in blocks if p.match(name)]
            assert len(hits) <= 1, f"{name} matches {len(hits)} block groups"
            return hits[0] if hits else None
        groups = {n: group(n) for n, _ in m.named_parameters()}
        assert all(v == ("stem",) for n, v in groups.items() if n.startswith("stem."))
        assert groups["head.fc.weight"] is None
        ordinals = [v for n, v in groups.items() if n.startswith("stages.")]
        assert ordinals == sorted(ordinals) and len(set(ordinals)) == count
        assert groups["stages.0.0.conv1.conv.weight"] != groups["stages.0.1.conv1.conv.weight"] or coarse
        assert groups["stages.0.2.conv1.conv.weight"] != groups["stages.1.0.conv1.conv.weight"]


def test_reset_classifier_after_removing_it_builds_in_the_models_dtype():
    """reset_classifier(0) then reset_classifier(n) on a float64 network: the new classifier is float64 (it was
    built in the default dtype: the head had no parameter left to copy it from)."""
    m = vb.create_model("resnet18", num_classes=3).double().eval()
    m.reset_classifier(0)
    m.reset_classifier(4)
    assert m.get_classifier().weight.dtype == torch.float64
    assert m(torch.randn(1, 3, 32, 32, dtype=torch.float64)).shape == (1, 4)
