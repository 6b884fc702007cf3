"""Loading: strict and atomic, every bad key named; added blocks, classifier and first convolution; layouts."""
from __future__ import annotations

import warnings

import pytest
import torch

import visionblocks as vb
from visionblocks.weights import (
    ArchitectureMismatchError, CheckpointError, LayoutError, PretrainedWeights, StateDictMismatchError, added_modules,
    create_pretrained, load_checkpoint, load_state_dict,
)
from visionblocks.weights import pretrained as pretrained_mod
from visionblocks.weights.manifest import manifest_state_dict


SMALL = {"channels": (8, 16, 32, 64), "stem_width": 8}  # ResNet-18's structure at a few channels: fast


def _model(name="resnet18", **kw):
    torch.manual_seed(0)
    return vb.create_model(name, **{**SMALL, **kw}).eval()


def _snapshot(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def _unchanged(m, snap):
    return all(torch.equal(m.state_dict()[k], v) for k, v in snap.items())


def _ours(name="resnet18", seed=1, **kw):
    torch.manual_seed(seed)
    return vb.create_model(name, **({**SMALL, **kw} if name.startswith("resnet") else kw)).state_dict()


def test_own_layout_round_trip():
    sd = _ours()
    m = _model()
    res = load_checkpoint(m, sd)
    assert res.layout == "visionblocks" and res.missing_keys == [] and res.unexpected_keys == []
    assert _unchanged(m, sd)


def test_missing_key_is_named_and_nothing_loaded():
    sd = _ours()
    del sd["stages.1.0.conv2.conv.weight"]
    m = _model()
    snap = _snapshot(m)
    with pytest.raises(StateDictMismatchError, match=r"missing .*stages\.1\.0\.conv2\.conv\.weight") as e:
        load_checkpoint(m, sd)
    assert e.value.missing_keys == ["stages.1.0.conv2.conv.weight"]
    assert _unchanged(m, snap)


def test_unexpected_key_is_named_and_nothing_loaded():
    sd = _ours()
    sd["stages.1.0.extra.weight"] = torch.zeros(3)
    m = _model()
    snap = _snapshot(m)
    with pytest.raises(StateDictMismatchError, match=r"unexpected .*stages\.1\.0\.extra\.weight"):
        load_checkpoint(m, sd)
    assert _unchanged(m, snap)


def test_wrong_shape_names_the_key_and_both_shapes_even_when_not_strict():
    sd = _ours()
    sd["stages.2.1.conv1.conv.weight"] = torch.zeros(32, 32, 3, 1)
    m = _model()
    snap = _snapshot(m)
    for strict in (True, False):
        with pytest.raises(StateDictMismatchError,
                           match=r"stages\.2\.1\.conv1\.conv\.weight: checkpoint \(32, 32, 3, 1\), model \(32, 32, 3, 3\)"):
            load_checkpoint(m, sd, strict=strict)
    assert _unchanged(m, snap)


def test_non_strict_returns_the_lists_and_loads_the_rest():
    sd = _ours()
    del sd["stages.1.0.conv2.conv.weight"]
    sd["junk"] = torch.zeros(1)
    m = _model()
    with pytest.warns(UserWarning, match="1 keys missing, 1 unexpected"):
        res = load_checkpoint(m, sd, strict=False)
    assert res.missing_keys == ["stages.1.0.conv2.conv.weight"] and res.unexpected_keys == ["junk"]
    assert torch.equal(m.state_dict()["stages.1.0.conv1.conv.weight"], sd["stages.1.0.conv1.conv.weight"])


def test_old_checkpoints_without_num_batches_tracked_load():
    sd = {k: v for k, v in _ours().items() if not k.endswith("num_batches_tracked")}
    res = load_checkpoint(_model(), sd)
    assert res.missing_keys == []


def test_tensor_from_another_model_is_refused():
    # another architecture of ours: its keys are named, nothing loads
    m = _model()
    snap = _snapshot(m)
    with pytest.raises((StateDictMismatchError, LayoutError)):
        load_checkpoint(m, _ours("mobilenetv2"))
    # another source layout, recognised as such
    with pytest.raises(LayoutError, match="torchvision.mobilenetv2"):
        load_checkpoint(m, manifest_state_dict("torchvision.mobilenetv2--mobilenet_v2", device="cpu"))
    # a deeper ResNet of the same layout: the extra blocks are named
    with pytest.raises(StateDictMismatchError, match=r"stages\.1\.2\."):
        load_checkpoint(m, _ours("resnet34"))
    assert _unchanged(m, snap)
    with pytest.raises(LayoutError, match="unrecognised checkpoint layout"):
        load_checkpoint(m, {"foo.weight": torch.zeros(2), "bar.bias": torch.zeros(2)})


def test_added_blocks_are_exactly_the_missing_keys():
    sd = _ours("resnet18")
    m = _model("resnet18", attn="cbam")
    res = load_checkpoint(m, sd)
    attn_keys = [k for k in m.state_dict() if ".attn." in k and not k.endswith("num_batches_tracked")]
    assert res.added_keys == attn_keys and res.missing_keys == attn_keys and attn_keys
    assert added_modules(m) == sorted({k.split(".attn.")[0] + ".attn" for k in attn_keys})
    assert all(torch.equal(m.state_dict()[k], v) for k, v in sd.items())
    # the explicit form: only the modules named may be absent
    with pytest.raises(StateDictMismatchError, match="missing"):
        load_checkpoint(_model("resnet18", attn="cbam"), sd, allow_missing=None)
    res = load_checkpoint(_model("resnet18", attn="cbam"), sd, allow_missing=added_modules(m))
    assert res.added_keys == attn_keys
    # a partially present block is not "added": its missing keys are named
    one = dict(sd, **{k: v for k, v in m.state_dict().items() if k.startswith("stages.0.0.attn.")})
    one.pop("stages.0.0.attn.channel_gate.mlp.fc1.weight")
    with pytest.raises(StateDictMismatchError, match=r"stages\.0\.0\.attn\.channel_gate\.mlp\.fc1\.weight"):
        load_checkpoint(_model("resnet18", attn="cbam"), one)


def test_attention_missing_from_some_blocks_of_an_attention_checkpoint_is_an_error():
    sd = _ours("resnet18", attn="se")
    gone = [k for k in sd if k.startswith("stages.1.0.attn.")]
    for k in gone:
        del sd[k]
    m = _model("resnet18", attn="se")
    with pytest.raises(StateDictMismatchError, match=r"stages\.1\.0\.attn\.fc1\.weight") as e:
        load_checkpoint(m, sd)
    assert e.value.missing_keys == gone


def test_added_blocks_are_announced():
    with pytest.warns(UserWarning, match="keep their initialisation"):
        load_checkpoint(_model("resnet18", attn="eca"), _ours("resnet18"))


def test_stage_attention_is_added_too():
    with torch.device("meta"):
        m = vb.create_model("bam_resnet50", **SMALL)
        sd = vb.create_model("resnet50", **SMALL).state_dict()
    res = load_checkpoint(m, sd)
    assert {".".join(k.split(".")[:3]) for k in res.added_keys} == {"stages.0.3", "stages.1.4", "stages.2.6"}


def test_other_num_classes_drops_the_classifier_and_says_so():
    sd = _ours()
    m = _model(num_classes=10)
    fc = m.head.fc.weight.clone()
    with pytest.warns(UserWarning, match="1000-class classifier"):
        res = load_checkpoint(m, sd)
    assert res.dropped_keys == ["head.fc.weight", "head.fc.bias"]
    assert res.missing_keys == ["head.fc.weight", "head.fc.bias"]
    assert torch.equal(m.head.fc.weight, fc)
    assert torch.equal(m.stem[0].conv.weight, sd["stem.0.conv.weight"])
    m0 = _model(num_classes=0)
    with pytest.warns(UserWarning, match=r"the model has no classifier \(head.fc: num_classes=0\)"):
        res = load_checkpoint(m0, sd)
    assert res.dropped_keys == ["head.fc.weight", "head.fc.bias"] and res.missing_keys == []


def test_a_damaged_classifier_is_an_error_not_another_class_count():
    # the same class count with another input width, or a classifier key missing, is a damaged (or another
    # model's) checkpoint: named, nothing loaded; only another class count drops the classifier
    m = _model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    sd = _ours()
    sd["head.fc.weight"] = torch.zeros(sd["head.fc.weight"].shape[0], 7)
    with pytest.raises(StateDictMismatchError, match=r"head.fc.weight: checkpoint \(1000, 7\)"):
        load_checkpoint(m, sd)
    sd = _ours()
    del sd["head.fc.bias"]
    with pytest.raises(StateDictMismatchError, match=r"missing from the checkpoint \(1\): head.fc.bias"):
        load_checkpoint(m, sd)
    sd = _ours()
    sd["head.fc.bias"] = torch.zeros(10)  # 1000-class weight, 10-class bias
    with pytest.raises(StateDictMismatchError, match=r"head.fc.weight: checkpoint \(1000, \d+\), model \(10, "):
        load_checkpoint(_model(num_classes=10), sd)
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_headless_checkpoint_leaves_the_classifier_and_says_so():
    sd = {k: v for k, v in _ours().items() if not k.startswith("head.")}
    m = _model()
    with pytest.warns(UserWarning, match="no classifier"):
        res = load_checkpoint(m, sd)
    assert res.missing_keys == ["head.fc.weight", "head.fc.bias"]


@pytest.mark.parametrize("in_chans", [1, 2, 4, 7])
def test_other_in_chans_adapts_the_first_conv(in_chans):
    sd = _ours()
    w = sd["stem.0.conv.weight"]
    m = _model(in_chans=in_chans)
    res = load_checkpoint(m, sd)
    assert res.adapted_keys == ["stem.0.conv.weight"]
    got = m.stem[0].conv.weight
    if in_chans == 1:
        torch.testing.assert_close(got, w.sum(1, keepdim=True))
    else:
        for c in range(in_chans):
            torch.testing.assert_close(got[:, c], w[:, c % 3] * 3 / in_chans)
    # a grey image through the adapted network equals the 3-channel image of it (for in_chans 1)
    if in_chans == 1:
        m3 = _model()
        load_checkpoint(m3, sd)
        x = torch.randn(1, 1, 32, 32)
        torch.testing.assert_close(m(x), m3(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_torchvision_bottleneck_into_he_et_al_resnet_is_refused_naming_the_option():
    sd = manifest_state_dict("torchvision.resnet--resnet50")
    with torch.device("meta"):
        m = vb.create_model("resnet50")
    with pytest.raises(ArchitectureMismatchError, match="stride_3x3=True") as e:
        load_checkpoint(m, sd)
    assert e.value.options == {"stride_3x3": True}
    with torch.device("meta"):
        m = vb.create_model("resnet50", stride_3x3=True)
    assert load_checkpoint(m, sd).layout == "torchvision.resnet"


def test_torchvision_efficientnet_needs_its_batchnorm_eps():
    sd = manifest_state_dict("torchvision.efficientnet--efficientnet_b0")
    with torch.device("meta"):
        m = vb.create_model("efficientnet_b0")
    with pytest.raises(ArchitectureMismatchError, match="norm_layer='batchnorm'"):
        load_checkpoint(m, sd)


def test_torchvision_checkpoint_into_a_grey_ten_class_model():
    sd = manifest_state_dict("torchvision.resnet--resnet50")
    with torch.device("meta"):
        m = vb.create_model("resnet50", stride_3x3=True, in_chans=1, num_classes=10)
    with pytest.warns(UserWarning, match="1000-class classifier"):
        res = load_checkpoint(m, sd)
    assert res.adapted_keys == ["stem.0.conv.weight"]
    assert res.dropped_keys == ["head.fc.weight", "head.fc.bias"] and res.missing_keys == ["head.fc.weight", "head.fc.bias"]


def test_torchvision_resnet_with_added_attention():
    sd = manifest_state_dict("torchvision.resnet--resnet50")
    with torch.device("meta"):
        m = vb.create_model("resnet50", attn="cbam", stride_3x3=True)
    res = load_checkpoint(m, sd)
    own = [k for k in m.state_dict() if ".attn." in k and not k.endswith("num_batches_tracked")]
    assert res.missing_keys == own == res.added_keys


def test_weights_by_name_build_the_matching_configuration(tmp_path, monkeypatch):
    # a registered checkpoint at a file:// URL stands for torchvision's resnet50 file
    torch.manual_seed(0)
    src = vb.create_model("resnet50", stride_3x3=True, **SMALL)
    tv = dict(zip(manifest_state_dict("torchvision.resnet--resnet50"), src.state_dict().values()))  # same order
    path = tmp_path / "resnet50-test.pth"
    torch.save(tv, path)
    w = PretrainedWeights(model="resnet50", tag="test_in1k", url=path.as_uri(), layout="torchvision.resnet",
                          source="test", source_name="resnet50", kwargs={"stride_3x3": True, **SMALL})
    monkeypatch.setitem(pretrained_mod._WEIGHTS, w.name, w)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        for m in (create_pretrained("resnet50.test_in1k"), create_pretrained("resnet50", "test_in1k")):
            assert m.stages[1][0].conv2.conv.stride == (2, 2)
            assert all(torch.equal(m.state_dict()[k], v) for k, v in src.state_dict().items())
        with pytest.raises(ArchitectureMismatchError, match="stride_3x3"):
            create_pretrained("resnet50.test_in1k", stride_3x3=False)
        # by path: the caller's configuration, refused with the option to set
        with pytest.raises(ArchitectureMismatchError, match="stride_3x3=True"):
            create_pretrained("resnet50", str(path), **SMALL)
        m, res = create_pretrained("resnet50", str(path), stride_3x3=True, num_classes=7, return_result=True,
                                   **SMALL)
        assert res.dropped_keys == ["head.fc.weight", "head.fc.bias"]
    finally:
        torch.hub.set_dir(old)


def test_layout_can_be_forced_and_is_checked():
    sd = _ours()
    assert load_checkpoint(_model(), sd, layout="visionblocks").layout == "visionblocks"
    with pytest.raises(LayoutError, match="loads into"):
        load_state_dict(_model(), sd, layout="torchvision.mobilenetv2")
    with pytest.raises(LayoutError, match="unknown checkpoint layout"):
        load_state_dict(_model(), sd, layout="nope")


def test_no_warning_on_a_clean_load():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(_model(), _ours())


def test_weights_without_a_direct_url_say_where_to_download_them():
    with pytest.raises(CheckpointError, match="drive.google.com.*stride_3x3=True"):
        create_pretrained("cbam_resnet50.authors_in1k")


@pytest.mark.parametrize("manifest,model,kwargs,anchor,ours", [
    ("torchvision.resnet--resnet50", "resnet50", {"stride_3x3": True}, "layer1.0.conv1.weight",
     "stages.0.0.conv1.conv.weight"),
    ("torchvision.mobilenetv2--mobilenet_v2", "mobilenetv2", {}, "features.1.conv.0.0.weight",
     "blocks.0.conv_dw.conv.weight"),
])
def test_a_missing_key_the_layout_detector_looks_for_is_named(manifest, model, kwargs, anchor, ours):
    # without it the detector does not recognise the layout; the converter whose renamed keys are nearly all the
    # model's still applies, so the strict load names the missing key (was: "unrecognised checkpoint layout")
    sd = manifest_state_dict(manifest)
    del sd[anchor]
    with torch.device("meta"):
        m = vb.create_model(model, **kwargs)
    with pytest.raises(StateDictMismatchError, match=rf"missing from the checkpoint \(1\): {ours}") as e:
        load_checkpoint(m, sd)
    assert e.value.missing_keys == [ours] and manifest.split("--")[0] in str(e.value)


def test_unrecognised_checkpoints_say_what_they_may_be():
    # our own ResNet-50's checkpoint into ResNet-18, a training form's into a folded model: "unrecognised layout" alone
    import visionblocks as vb
    with pytest.raises(LayoutError, match=r"of its \d+ keys are this model's: a checkpoint of another architecture"):
        load_checkpoint(vb.create_model("resnet18"), vb.create_model("resnet50").state_dict())
    cases = [(vb.create_model("repvgg_a0", deploy=True), vb.create_model("repvgg_a0").state_dict()),
             (vb.fuse(vb.create_model("resnet18").eval()), vb.create_model("resnet18").state_dict())]
    for folded, training_form in cases:
        with pytest.raises(LayoutError, match="this model is folded .* load it into the model before folding it"):
            load_checkpoint(folded, training_form)
