"""Every committed source layout (manifest written by tools/weights_harness.py) converts and loads strictly."""
from __future__ import annotations

import pytest
import torch

import visionblocks as vb
from visionblocks.weights import StateDictMismatchError, get_converter, list_weights, get_weights, load_checkpoint
from visionblocks.weights.manifest import manifest_names, manifest_state_dict, read_manifest

NAMES = manifest_names()


def _meta_model(man):
    with torch.device("meta"):
        return vb.create_model(man["model"], **man["kwargs"])


def test_there_are_manifests():
    assert len(NAMES) >= 9


@pytest.mark.parametrize("name", NAMES)
def test_manifest_converts_and_loads_strictly(name):
    man = read_manifest(name)
    assert man["passed"], "the harness recorded a failed numerical check"
    assert man["max_rel_diff"] <= 1e-6 or man.get("note"), "an inexact conversion must say why"
    sd = manifest_state_dict(name)
    res = load_checkpoint(_meta_model(man), sd, strict=True)
    assert res.layout == man["converter"]
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert get_converter(man["converter"]).models.get(man["model"]) is not None


@pytest.mark.parametrize("name", NAMES)
def test_damaged_manifest_names_the_key(name):
    man = read_manifest(name)
    sd = manifest_state_dict(name)
    weights = [k for k, v in sd.items() if k.endswith("weight") and v.ndim >= 2]
    victim = weights[len(weights) // 2]  # a tensor inside the network (the layout stays recognisable)
    damaged = {k: v for k, v in sd.items() if k != victim}
    with pytest.raises(StateDictMismatchError, match="missing") as e:
        load_checkpoint(_meta_model(man), damaged)
    assert len(e.value.missing_keys) == 1
    bad = dict(sd, **{victim: torch.empty(*sd[victim].shape[:-1], sd[victim].shape[-1] + 2, device="meta")})
    with pytest.raises(StateDictMismatchError, match="wrong shapes: .*checkpoint"):
        load_checkpoint(_meta_model(man), bad)


def test_registered_weights_have_a_verified_layout():
    verified = {(read_manifest(n)["converter"], read_manifest(n)["model"]) for n in NAMES}
    for name in list_weights():
        model, _, tag = name.partition(".")
        w = get_weights(model, tag)
        assert (w.layout, w.model) in verified, f"{name}: no manifest verifies {w.layout} into {w.model}"
