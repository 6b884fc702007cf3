"""The backbone API (issue 13), parametrized over every registered model: features, classifier, data config,
drop path, gradient checkpointing, weight-decay exclusions, input channels."""
import math

import pytest
import torch

import visionblocks as vb
from visionblocks import testing as T
from visionblocks.features import FeatureListNet

MODELS = vb.list_models()


def _sizes(info):
    h, w = T.model_test_size(info)
    if info.test_input_size is None:  # fixed-size model
        return [(h, w)]
    return [(h, w), (h + 32, w + 16)]


@pytest.mark.parametrize("name", MODELS)
def test_feature_info_matches_a_real_forward(name):
    info = vb.model_info(name)
    torch.manual_seed(0)
    m = vb.create_model(name).eval()
    fi = m.feature_info
    assert len(fi) >= 1
    for e in fi:
        assert isinstance(e["num_chs"], int) and e["num_chs"] > 0
        assert isinstance(e["reduction"], int) and e["reduction"] >= 1
        m.get_submodule(e["module"])  # the named module exists
    assert fi.reduction() == sorted(fi.reduction()), "reductions never decrease"
    for h, w in _sizes(info):
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            final, feats = m.forward_intermediates(x)
            ref = m.forward_features(x)
        assert len(feats) == len(fi)
        torch.testing.assert_close(final, ref)
        for e, f in zip(fi, feats):
            r = e["reduction"]
            assert f.ndim == 4 and f.shape[:2] == (1, e["num_chs"]), f"{name} feature {e}: {tuple(f.shape)}"
            assert f.shape[2] in (h // r, math.ceil(h / r)) and f.shape[3] in (w // r, math.ceil(w / r)), \
                f"{name} feature {e} at {h}x{w}: {tuple(f.shape)}"


@pytest.mark.parametrize("name", MODELS)
def test_features_only_and_pruning(name):
    info = vb.model_info(name)
    h, w = T.model_test_size(info)
    x = torch.randn(2, 3, h, w)
    torch.manual_seed(0)
    full = vb.create_model(name).eval()
    n = len(full.feature_info)
    with torch.no_grad():
        all_feats = full.forward_intermediates(x, intermediates_only=True)
    torch.manual_seed(0)
    fx = vb.create_model(name, features_only=True).eval()
    assert isinstance(fx, FeatureListNet) and fx.out_indices == tuple(range(n))
    assert fx.feature_info.channels() == full.feature_info.channels()
    sub = (n - 1,) if n == 1 else (0, n - 1)
    torch.manual_seed(0)
    part = vb.create_model(name, features_only=True, out_indices=sub).eval()
    src = {k: v for k, v in full.state_dict().items()}
    part.model.load_state_dict({k: v for k, v in src.items() if k in part.model.state_dict()}, strict=False)
    with torch.no_grad():
        got = part(x)
    assert len(got) == len(sub)
    for i, g in zip(sub, got):
        torch.testing.assert_close(g, all_feats[i])
    assert part.feature_info.channels() == [full.feature_info.channels(i) for i in sub]
    with torch.no_grad():
        nhwc = full.forward_intermediates(x, indices=[n - 1], output_fmt="NHWC", intermediates_only=True)[0]
    torch.testing.assert_close(nhwc, all_feats[n - 1].permute(0, 2, 3, 1))
    for bad in [(n,), (-n - 1,)]:
        with pytest.raises(ValueError, match=f"offers {n} features"):
            vb.create_model(name, features_only=True, out_indices=bad)


@pytest.mark.parametrize("name", MODELS)
def test_classifier_api(name):
    info = vb.model_info(name)
    h, w = T.model_test_size(info)
    m = vb.create_model(name, num_classes=7).eval()
    assert m.num_classes == 7 and isinstance(m.num_features, int)
    assert m.get_classifier() is not None
    x = torch.randn(1, 3, h, w)
    m.reset_classifier(5)
    assert m.num_classes == 5
    with torch.no_grad():
        assert m(x).shape == (1, 5)
    m.reset_classifier(0)
    with torch.no_grad():
        assert m(x).shape == (1, m.num_features)
    with pytest.raises(ValueError, match="num_classes"):
        m.reset_classifier(-1)


@pytest.mark.parametrize("name", MODELS)
def test_pretrained_cfg_and_data_config(name):
    m = vb.create_model(name)
    cfg = m.pretrained_cfg
    for key in ("input_size", "crop_pct", "interpolation", "mean", "std", "first_conv", "classifier", "paper"):
        assert key in cfg, f"{name}: pretrained_cfg lacks {key}"
    assert cfg["input_size"] == vb.model_info(name).input_size
    m.get_submodule(cfg["first_conv"])
    assert isinstance(m.get_submodule(cfg["classifier"]), torch.nn.Module)
    dc = vb.resolve_data_config(m)
    assert dc["input_size"] == cfg["input_size"] and len(dc["mean"]) == 3 and 0 < dc["crop_pct"] <= 1


@pytest.mark.parametrize("name", MODELS)
def test_grad_checkpointing_keeps_outputs_and_grads(name):
    info = vb.model_info(name)
    h, w = T.model_test_size(info)
    torch.manual_seed(0)
    a = vb.create_model(name, num_classes=4).train()
    torch.manual_seed(0)
    b = vb.create_model(name, num_classes=4).train()
    b.set_grad_checkpointing(True)
    x = torch.randn(2, 3, h, w)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=f"{name}: grad of {n}")


@pytest.mark.parametrize("name", MODELS)
def test_no_weight_decay_names_exist(name):
    m = vb.create_model(name)
    names = m.no_weight_decay()
    own = {n for n, _ in m.named_parameters()}
    assert set(names) <= own, f"{name}: no_weight_decay names {set(names) - own} that are not parameters"


@pytest.mark.parametrize("name", MODELS)
def test_drop_path_and_in_chans(name):
    info = vb.model_info(name)
    h, w = T.model_test_size(info)
    m = vb.create_model(name, drop_path_rate=0.1, drop_rate=0.1, in_chans=1, num_classes=3).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 1, h, w)).shape == (1, 3)
    with pytest.raises(ValueError, match="in_chans"):
        vb.create_model(name, in_chans=0)
    with pytest.raises(ValueError, match="drop_path_rate"):
        vb.create_model(name, drop_path_rate=-0.1)
