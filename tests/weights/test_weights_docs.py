"""docs/weights.md is generated (python -m visionblocks.weights.docs): every checkpoint and proof is in it."""
from __future__ import annotations

from visionblocks.weights import list_weights
from visionblocks.weights.docs import DOCS, render
from visionblocks.weights.manifest import manifest_names, read_manifest


def test_weights_page_lists_every_checkpoint_and_converter_proof():
    text = DOCS.read_text()
    stale = "docs/weights.md is stale: run python -m visionblocks.weights.docs"
    for name in list_weights():
        model, _, tag = name.partition(".")
        assert f"| `{model}` | `{tag}`" in text, stale
    for name in manifest_names():
        man = read_manifest(name)
        assert f"`{man['source_model']}" in text and f"`{man['model']}` (" in text, stale


def test_render_is_deterministic():
    assert render() == render()
