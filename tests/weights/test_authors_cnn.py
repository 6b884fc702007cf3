"""Tests of :mod:`visionblocks.weights.authors_cnn` beyond the manifests (which every converter passes in
test_weights_manifests.py): configuration mismatches are refused naming the option to set."""
from __future__ import annotations

import pytest
import torch

import visionblocks as vb
from visionblocks.weights import ArchitectureMismatchError, load_checkpoint
from visionblocks.weights.manifest import manifest_state_dict


def _meta(name, **kw):
    with torch.device("meta"):
        return vb.create_model(name, **kw)


def test_eca_kernel_sizes_mismatch_names_the_option():
    sd = manifest_state_dict("authors.eca--eca_resnet50")
    with pytest.raises(ArchitectureMismatchError, match=r"eca_kernel_sizes=\(3, 5, 5, 7\)") as e:
        load_checkpoint(_meta("eca_resnet50", stride_3x3=True), sd)      # adaptive sizes: 5, 5, 5, 7
    assert e.value.options == {"eca_kernel_sizes": (3, 5, 5, 7)}
    with pytest.raises(ArchitectureMismatchError, match="stride_3x3=True"):
        load_checkpoint(_meta("eca_resnet50", eca_kernel_sizes=(3, 5, 5, 7)), sd)
    res = load_checkpoint(_meta("eca_resnet50", stride_3x3=True, eca_kernel_sizes=(3, 5, 5, 7)), sd)
    assert res.layout == "authors.eca" and not res.missing_keys


def test_eca_named_weights_build_the_released_network():
    w = vb.weights.get_weights("eca_resnet50", "authors_in1k")
    m = _meta("eca_resnet50", **w.kwargs)
    assert [s[0].attn.kernel_size for s in m.stages] == [3, 5, 5, 7]
    assert load_checkpoint(m, manifest_state_dict("authors.eca--eca_resnet50")).layout == w.layout


def test_scnet_stacks_their_two_1x1_halves_in_order():
    """Their conv1_a (K1's half) comes first in our conv1, conv1_b (the self-calibrated half) second; the same for
    every BN tensor; K2's conv is their scconv.k2.1 (k2.0 is the pooling)."""
    from visionblocks.weights import get_converter
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else torch.zeros((), dtype=v.dtype)
          for k, v in manifest_state_dict("authors.scnet--scnet50").items()}
    out = get_converter("authors.scnet").convert(sd, _meta("scnet50"))
    b = "stages.2.3"
    torch.testing.assert_close(out[f"{b}.conv1.conv.weight"],
                               torch.cat([sd["layer3.3.conv1_a.weight"], sd["layer3.3.conv1_b.weight"]]), rtol=0, atol=0)
    torch.testing.assert_close(out[f"{b}.conv1.bn.running_var"],
                               torch.cat([sd["layer3.3.bn1_a.running_var"], sd["layer3.3.bn1_b.running_var"]]), rtol=0, atol=0)
    assert out[f"{b}.conv2.k2.conv.weight"] is sd["layer3.3.scconv.k2.1.weight"]
    assert out[f"{b}.conv2.k1.bn.bias"] is sd["layer3.3.k1.1.bias"]


def test_dbb_form_mismatch_names_deploy():
    with pytest.raises(ArchitectureMismatchError, match="deploy=True"):
        load_checkpoint(_meta("dbb_resnet18"), manifest_state_dict("authors.dbb--dbb_resnet18-folded"))
    with pytest.raises(ArchitectureMismatchError, match="deploy=False"):
        load_checkpoint(_meta("dbb_resnet18", deploy=True), manifest_state_dict("authors.dbb--dbb_resnet18"))


def test_acnet_form_mismatch_names_deploy():
    with pytest.raises(ArchitectureMismatchError, match="deploy=True"):
        load_checkpoint(_meta("acnet_resnet18"), manifest_state_dict("authors.acnet--acnet_resnet18-folded"))
    with pytest.raises(ArchitectureMismatchError, match="deploy=False"):
        load_checkpoint(_meta("acnet_resnet18", deploy=True), manifest_state_dict("authors.acnet--acnet_resnet18"))


def test_repmlpnet_flattens_stages_and_embeds_in_network_order():
    """T224 has (2, 2, 6, 2) units: their stages.2.5 is our features.12, embeds.2 our features.13, stages.3.0 our
    features.14; a form mismatch names deploy."""
    from visionblocks.weights import get_converter
    sd = manifest_state_dict("authors.repmlpnet--repmlpnet_t224")
    out = get_converter("authors.repmlpnet").convert(sd, _meta("repmlpnet_t224"))
    assert out["features.12.prebn1.weight"] is sd["stages.2.5.prebn1.weight"]
    assert out["features.13.conv.weight"] is sd["embeds.2.conv.weight"]
    assert out["features.14.block.local.conv3.conv.weight"] is sd["stages.3.0.repmlp_block.repconv3.conv.weight"]
    with pytest.raises(ArchitectureMismatchError, match="deploy=False"):
        load_checkpoint(_meta("repmlpnet_t224", deploy=True), sd)


def test_coresnet_levels_in_dilation_order():
    """Their conv2_<i> has dilation i: our levels.<i-1>; stage 4's plain conv2 is our single level."""
    from visionblocks.weights import get_converter
    sd = manifest_state_dict("authors.coresnet--coconv_resnet50")
    m = _meta("coconv_resnet50")
    out = get_converter("authors.coresnet").convert(sd, m)
    assert out["stages.1.2.conv2.conv.levels.2.weight"] is sd["layer2.2.conv2.conv2_3.weight"]
    assert [lv.dilation for lv in m.stages[1][2].conv2.conv.levels] == [(1, 1), (2, 2), (3, 3)]
    last = [k for k in out if k.startswith("stages.3.0.conv2.conv")]
    assert len(last) == 1 and out[last[0]] is sd["layer4.0.conv2.weight"]


def test_epsanet_reverses_the_branch_blocks():
    """Their PSA output is [branch 4, 3, 2, 1] (each branch prepended), ours [1, 2, 3, 4]: our conv2.bn block k is
    their bn2 block 3 - k, our conv3 input block k their input block 3 - k; the branch convolutions keep order."""
    from visionblocks.weights import get_converter
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else torch.zeros((), dtype=v.dtype)
          for k, v in manifest_state_dict("authors.epsanet--epsanet50_small").items()}
    out = get_converter("authors.epsanet").convert(sd, _meta("epsanet50_small"))
    theirs_bn, theirs_w = sd["layer2.1.bn2.running_mean"].view(4, 32), sd["layer2.1.conv3.weight"].view(512, 4, 32)
    ours_bn, ours_w = out["stages.1.1.conv2.bn.running_mean"].view(4, 32), out["stages.1.1.conv3.conv.weight"].view(512, 4, 32)
    for k in range(4):
        assert torch.equal(ours_bn[k], theirs_bn[3 - k]) and torch.equal(ours_w[:, k], theirs_w[:, 3 - k])
    assert out["stages.1.1.conv2.op.convs.3.weight"] is sd["layer2.1.conv2.conv_4.weight"]


def _damaged(name, edit):
    from visionblocks.weights.manifest import read_manifest
    man = read_manifest(name)
    sd = manifest_state_dict(name)
    edit(sd)
    return _meta(man["model"], **man["kwargs"]), sd


@pytest.mark.parametrize("name,edit", [
    ("authors.epsanet--epsanet50_small", lambda sd: sd.pop("layer1.0.bn2.running_var")),           # KeyError
    ("timm.volo--volo_d1_224", lambda sd: sd.update(pos_embed=sd["pos_embed"].flatten(1, 2))),      # RuntimeError
    ("timm.res2net--res2net50_26w_4s", lambda sd: sd.update({"layer1.1.bn1.weight": torch.empty((), device="meta")})),
], ids=["missing-key", "other-rank", "zero-dim"])
@pytest.mark.parametrize("strict", [True, False])
def test_a_damaged_checkpoint_is_a_checkpoint_error_naming_the_converter(name, edit, strict):
    # a converter met a checkpoint its layout's other keys promised otherwise: KeyError/IndexError/RuntimeError
    # tracebacks from inside the converter
    model, sd = _damaged(name, edit)
    converter = name.split("--")[0]
    with pytest.raises(vb.weights.CheckpointError,
                       match=rf"cannot convert the checkpoint with the {converter} converter .*nothing was loaded"):
        load_checkpoint(model, sd, strict=strict)
