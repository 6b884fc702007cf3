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
