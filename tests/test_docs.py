"""docs/models.md is generated from the registry: it must list every registered model with our counts."""
import os

import visionblocks as vb

DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "models.md")


def test_models_table_lists_every_model():
    text = open(DOCS).read()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ") and "---" not in line}
    missing = [n for n in vb.list_models() if n not in rows]
    assert not missing, f"docs/models.md is stale (run python -m visionblocks.docs_models): missing {missing}"
    info = vb.model_info("resnet50")
    assert f"| {info.paper_params:.2f} |" in rows["resnet50"]
