"""docs/models.md is generated from the registry: it must list every registered model with our counts."""
import os

import pytest

import visionblocks as vb
from visionblocks.docs_models import _HEADER, feature_columns

DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "models.md")


def test_models_table_lists_every_model():
    text = open(DOCS).read()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ") and "---" not in line}
    missing = [n for n in vb.list_models() if n not in rows]
    assert not missing, f"docs/models.md is stale (run python -m visionblocks.docs_models): missing {missing}"
    info = vb.model_info("resnet50")
    assert f"| {info.paper_params:.2f} |" in rows["resnet50"]


def _rows():
    text = open(DOCS).read()
    lines = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return header, {c[0]: dict(zip(header, c)) for c in ([x.strip() for x in line.strip("|").split("|")]
                                                          for line in lines[1:])}


def test_models_table_has_the_feature_columns():
    header, rows = _rows()
    assert header == _HEADER, f"docs/models.md is stale (run python -m visionblocks.docs_models): header {header}"
    assert rows["resnet50"]["feature channels"] == "64, 256, 512, 1024, 2048"
    assert rows["resnet50"]["feature reductions"] == "2, 4, 8, 16, 32"


@pytest.mark.parametrize("name", ["resnet50", "mobilevit_xxs", "volo_d1", "repvgg_a0", "mixer_s16"])
def test_feature_columns_match_the_models(name):
    _, rows = _rows()
    chs, reds = feature_columns(name)
    assert (rows[name]["feature channels"], rows[name]["feature reductions"]) == (chs, reds), \
        f"docs/models.md is stale for {name} (run python -m visionblocks.docs_models)"


def test_models_table_is_what_the_registry_gives_now():
    """Every row of docs/models.md (params, MACs, features, notes) is what ``python -m visionblocks.docs_models``
    writes today: a change to a model or to how a layer computes (a mean as a matrix product counted as
    multiply-adds) shows here, not in a reader's comparison."""
    from visionblocks.docs_models import render
    want = render().splitlines()
    have = open(DOCS).read().splitlines()
    stale = [w for w, h in zip(want, have) if w != h] + want[len(have):]
    assert not stale and len(have) == len(want), \
        f"docs/models.md is stale (run python -m visionblocks.docs_models): {stale[:2]}"


def test_flop_counts_are_of_the_networks_arithmetic():
    """Under torch's FLOP counter the fast forms give way to the network's own arithmetic: coordinate attention's
    direction means (matrix products with a 1/n vector when counted eagerly) count nothing, its three 1x1
    convolutions count their multiply-adds."""
    import torch
    from visionblocks.measure import count_flops
    gate = vb.create_block("coord_attention", 64, reduction=32).eval()
    x = torch.randn(2, 64, 28, 14)
    mid = gate.conv_h.in_channels
    convs = 2 * 2 * (64 * mid * (28 + 14) + mid * 64 * 28 + mid * 64 * 14)   # 2 FLOPs per multiply-add
    with torch.no_grad():
        assert count_flops(gate, (x,)) == convs
