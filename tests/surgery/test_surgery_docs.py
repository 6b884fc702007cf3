"""The torch-only examples of docs/plug_in.md run as written."""
import pytest
from _doc_examples import doc_examples, with_surgery_exports

import visionblocks as vb

EXAMPLES = doc_examples()


def test_the_page_has_its_examples():
    assert {"insert-glob", "preset-se", "lazy", "torchvision-acnet", "timm", "ultralytics",
            "yolov8-cbam.yaml"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", ["insert-glob", "preset-se", "lazy"])
def test_doc_example_runs(name, monkeypatch):
    for attr, value in with_surgery_exports().items():
        monkeypatch.setattr(vb, attr, value, raising=False)
    namespace = {}
    exec(compile(EXAMPLES[name], f"docs/plug_in.md:{name}", "exec"), namespace)
    if name == "insert-glob":
        assert namespace["report"][:2] == ["stages.0.0.conv2.block", "stages.0.1.conv2.block"]
        assert namespace["report"].params_added == 177040  # the figure the page prints
