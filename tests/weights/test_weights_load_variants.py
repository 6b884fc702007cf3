"""Checkpoints saved the ways training code saves them (EMA from torch's AveragedModel, Lightning's ``model.``
prefix, feature extractors, folded networks, other input channels in a checkpoint of another precision) and
tensors a checkpoint must not smuggle in (meta, sharded or other tensor subclasses, complex/bool/int for float)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks import testing as T
from visionblocks.features import FeatureListNet
from visionblocks.weights import load_checkpoint
from visionblocks.weights.errors import CheckpointError, StateDictMismatchError


def _model(name="resnet18", **kw):
    torch.manual_seed(0)
    return T.randomize_bn_stats(vb.create_model(name, num_classes=10, **kw), seed=1).eval()


def _same_state(a: nn.Module, b: dict) -> bool:
    sa = a.state_dict()
    return sa.keys() == b.keys() and all(torch.equal(sa[k], b[k]) for k in sa)


class _Sub(torch.Tensor):
    pass


@pytest.mark.parametrize("bad", ["meta", "complex", "bool", "int8", "subclass"])
def test_a_tensor_of_the_wrong_kind_is_refused_and_nothing_is_loaded(bad):
    src, dst = _model(), _model()
    with torch.no_grad():
        for p in dst.parameters():
            p.add_(1.0)
    before = copy.deepcopy(dst.state_dict())
    sd = dict(src.state_dict())
    key = "stages.2.0.conv1.conv.weight" if "stages.2.0.conv1.conv.weight" in sd else next(iter(sd))
    v = sd[key]
    sd[key] = {"meta": lambda: torch.empty_like(v, device="meta"), "complex": lambda: v.to(torch.complex64),
               "bool": lambda: v > 0, "int8": lambda: v.to(torch.int8), "subclass": lambda: v.as_subclass(_Sub)}[bad]()
    with pytest.raises(StateDictMismatchError, match="wrong kinds of tensor") as e:
        load_checkpoint(dst, sd)
    assert key in str(e.value)
    assert _same_state(dst, before)


def test_averaged_model_ema_loads_with_use_ema():
    # visionblocks' own trainer (and torch.optim.swa_utils users) save AveragedModel's state: n_averaged + module.*
    model = _model()
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
    with torch.no_grad():
        for p in ema.module.parameters():
            p.mul_(0.5)
    ck = {"model": model.state_dict(), "model_ema": ema.state_dict()}
    dst = _model()
    load_checkpoint(dst, ck, use_ema=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), ema.module.eval()(x))
    load_checkpoint(dst, ck)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), model(x))


def test_a_model_prefix_on_either_side():
    model, x = _model(), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    lightning = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    dst = _model("resnet18")
    with torch.no_grad():
        dst.stem[0].conv.weight.zero_()
    load_checkpoint(dst, lightning)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), ref)
    # a feature extractor's own checkpoint (keys model.*) back into a feature extractor; a whole network's into one
    fe = vb.create_model("resnet18", features_only=True, out_indices=(1, 2))
    fe.load_state_dict({k: v for k, v in {f"model.{k}": v for k, v in model.state_dict().items()}.items()
                        if k in fe.state_dict()})
    with torch.no_grad():
        want = [t.clone() for t in fe(x)]
    for source in (fe.state_dict(), model.state_dict()):
        other = vb.create_model("resnet18", features_only=True, out_indices=(1, 2))
        result = load_checkpoint(other, source)
        with torch.no_grad():
            got = other(x)
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert any("features_only pruned" in m for m in result.messages) and result.dropped_keys


def test_repvgg_training_form_adapts_both_stem_branches_to_one_channel():
    three = _model("repvgg_a0")
    one = vb.create_model("repvgg_a0", num_classes=10, in_chans=1).eval()
    result = load_checkpoint(one, three.state_dict())
    assert len(result.adapted_keys) == 2, result.adapted_keys
    grey = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(one(grey), three(grey.expand(2, 3, 64, 64)), rtol=1e-4, atol=1e-4)


def test_a_half_precision_checkpoint_is_adapted_in_the_models_precision():
    src = _model()
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in src.state_dict().items()}
    one = vb.create_model("resnet18", num_classes=10, in_chans=1)
    load_checkpoint(one, half)
    want = half["stem.0.conv.weight"].float().sum(1, keepdim=True)   # summed in float32, not rounded in float16
    assert torch.equal(one.stem[0].conv.weight, want)


def test_a_folded_checkpoint_into_the_training_form_says_how_to_load_it():
    rep = vb.reparameterize(_model("acnet_resnet18"))
    with pytest.raises(CheckpointError, match="deploy=True"):
        load_checkpoint(_model("acnet_resnet18"), rep.state_dict())
    fused = vb.fuse(_model(), channels_last=False)
    before = copy.deepcopy(_model().state_dict())
    dst = _model()
    with pytest.raises(StateDictMismatchError, match="looks fused"):
        load_checkpoint(dst, fused.state_dict())
    assert _same_state(dst, before)


def test_file_checks(tmp_path):
    model = _model()
    path = tmp_path / "w.safetensors"            # a torch.save file under a safetensors name: read as what it is
    torch.save(model.state_dict(), path)
    dst = _model()
    with torch.no_grad():
        dst.stem[0].conv.weight.zero_()
    load_checkpoint(dst, path)
    assert torch.equal(dst.stem[0].conv.weight, model.stem[0].conv.weight)
    with pytest.raises(ValueError, match="sha256"):
        load_checkpoint(dst, path, sha256="")
    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(dst, tmp_path)


def test_out_indices_without_features_only_is_refused_with_pretrained_too(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(_model().state_dict(), path)
    with pytest.raises(ValueError, match="out_indices"):
        vb.create_model("resnet18", num_classes=10, out_indices=(1, 2), pretrained=str(path))


def test_ema_weights_one_level_down_and_ema_only_checkpoints():
    model, ema = _model(), _model()
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(0.5)
    x = torch.randn(2, 3, 64, 64)
    dst = _model()
    load_checkpoint(dst, {"state_dict": {"model": model.state_dict(), "model_ema": ema.state_dict()}}, use_ema=True)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), ema(x))
    with pytest.warns(UserWarning, match="only EMA weights"):
        load_checkpoint(dst, {"model_ema": model.state_dict(), "epoch": 3})
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_checkpoint(dst, {"model": model.state_dict()}, use_ema=True)


def test_create_model_features_only_loads_an_extractors_own_checkpoint_and_a_whole_networks(tmp_path):
    """``create_model(features_only=True, pretrained=<file>)``: a feature extractor's own checkpoint (which lacks
    the stages and head it pruned) loads, as does the whole network's; a checkpoint with keys of neither is
    refused naming what is missing."""
    torch.manual_seed(0)
    full = vb.create_model("resnet18").eval()
    x = torch.randn(1, 3, 64, 64)
    fe = vb.create_model("resnet18", features_only=True, out_indices=(1, 2))
    fe.load_state_dict({k: v for k, v in {f"model.{k}": v for k, v in full.state_dict().items()}.items()
                        if k in fe.state_dict()})
    fe.eval()
    with torch.no_grad():
        want = [t.clone() for t in fe(x)]
    torch.save(fe.state_dict(), tmp_path / "extractor.pt")
    torch.save(full.state_dict(), tmp_path / "full.pt")
    for name in ("extractor.pt", "full.pt"):
        got = vb.create_model("resnet18", features_only=True, out_indices=(1, 2), pretrained=str(tmp_path / name))
        assert isinstance(got, FeatureListNet)
        with torch.no_grad():
            out = got.eval()(x)
        assert len(out) == 2 and all(torch.equal(a, b) for a, b in zip(out, want)), name
    # an extractor's checkpoint of fewer features than asked for lacks keys: refused, naming them
    small = vb.create_model("resnet18", features_only=True, out_indices=(0,))
    torch.save(small.state_dict(), tmp_path / "small.pt")
    with pytest.raises(StateDictMismatchError, match="missing from the checkpoint .*stages.0.0.conv1"):
        vb.create_model("resnet18", features_only=True, out_indices=(1, 2), pretrained=str(tmp_path / "small.pt"))


@pytest.mark.parametrize("num_classes", [10, 0])
def test_volo_drops_both_of_its_classifiers_for_another_class_count(tmp_path, num_classes):
    # VOLO's token-labelling head (aux_head) is shaped by the class count too; only "head" was the classifier, so a
    # 1000-class checkpoint was refused at any other num_classes (aux_head's shape, or an unexpected key at 0)
    torch.manual_seed(0)
    src = vb.create_model("volo_d1").eval()
    torch.save(src.state_dict(), tmp_path / "volo.pth")
    m, result = vb.create_pretrained("volo_d1", tmp_path / "volo.pth", num_classes=num_classes, return_result=True)
    assert sorted(result.dropped_keys) == ["aux_head.bias", "aux_head.weight", "head.bias", "head.weight"]
    assert m.pretrained_cfg["classifier"] == ("head", "aux_head") and m.get_classifier() is m.head
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(m.eval().forward_features(x), src.forward_features(x), rtol=0, atol=0)


@pytest.mark.parametrize("word", ["tv_in1K", ""])
def test_a_word_that_is_no_tag_and_no_file_lists_the_tags(word):
    # a mistyped tag was reported as a missing file only ("no checkpoint file at 'tv_in1K'", "'.' is a directory")
    with pytest.raises(FileNotFoundError, match=rf"pretrained={word!r} is neither a weights tag of 'resnet50' nor a "
                                                r"checkpoint file.*its tags: tv_in1k, "):
        vb.create_model("resnet50", pretrained=word)
    with pytest.raises(FileNotFoundError, match="did you mean 'tv_in1k'"):
        vb.create_model("resnet50", pretrained="tv_in1K")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint file at 'w\.pth'"):  # a file name stays a file
        vb.create_model("resnet50", pretrained="w.pth")


def test_an_extractor_loads_a_whole_network_checkpoint_of_another_layout():
    # load_checkpoint(extractor, torchvision's resnet18) was "unrecognised checkpoint layout for FeatureListNet"
    # (docs/weights.md promised it): the layout is converted as for the extractor's network, the pruned parts dropped
    from visionblocks.weights.manifest import manifest_state_dict, read_manifest
    man = read_manifest("torchvision.resnet--resnet18")
    torch.manual_seed(0)
    sd = {k: (torch.randn(v.shape) if v.is_floating_point() else torch.zeros((), dtype=v.dtype))
          for k, v in manifest_state_dict("torchvision.resnet--resnet18", device="cpu").items()}
    sd = {k: (v.abs() + 0.5 if k.endswith("running_var") else v) for k, v in sd.items()}
    full = vb.create_model(man["model"], **man["kwargs"])
    assert load_checkpoint(full, sd).layout == "torchvision.resnet"
    fe = vb.create_model(man["model"], features_only=True, out_indices=(1, 2), **man["kwargs"])
    result = load_checkpoint(fe, {k: v.clone() for k, v in sd.items()})
    assert result.layout == "torchvision.resnet" and any(k.startswith("model.stages.3") for k in result.dropped_keys)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = full.eval().forward_intermediates(x, indices=[1, 2], intermediates_only=True)
        got = fe.eval()(x)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
