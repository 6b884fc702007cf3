"""Each converter against its source implementation (needs timm and torchvision: the integration tier).

Runs ``tools/weights_harness.py``'s cases: the source network with random weights, converted and loaded into ours
with ``strict=True``, outputs equal in float64 to 1e-6 relative.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("torchvision")
pytest.importorskip("timm")

_spec = importlib.util.spec_from_file_location(
    "weights_harness", Path(__file__).resolve().parents[3] / "tools" / "weights_harness.py")
harness = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = harness  # dataclasses look their module up
_spec.loader.exec_module(harness)
VERSIONS = harness._source_versions()
# the authors' cases run their code from local checkouts: VB_AUTHORS_DIR=DIR holding DIR/<owner>+<repo>/
AUTHORS_DIR = os.environ.get("VB_AUTHORS_DIR")
harness.AUTHORS_DIR = Path(AUTHORS_DIR) if AUTHORS_DIR else None


@pytest.mark.parametrize("case", harness.CASES, ids=[c.id for c in harness.CASES])
def test_converter_matches_its_source(case):
    if case.source == "authors" and not AUTHORS_DIR:
        pytest.skip("set VB_AUTHORS_DIR to checkouts of the authors' repositories")
    rec = harness.run_case(case, write=False, versions=VERSIONS)
    assert rec["max_rel_diff"] <= case.tol, rec
    assert rec["exact"] or case.note, "an inexact conversion must say why"
