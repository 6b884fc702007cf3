"""Tests of :mod:`visionblocks.models.paper_notes`: figures the notes quote as measured are our counts."""
from __future__ import annotations

import re

import pytest
import torch

import visionblocks as vb
from visionblocks.models.paper_notes import NOTES
from visionblocks.testing import count_params


@pytest.mark.parametrize("name", ["repvgg_a0", "repvgg_a1", "repvgg_b0"])
def test_repvgg_notes_quote_the_measured_counts(name):
    """Deployed then training-time parameter counts, written out in full (issue 14: 12.786 M was quoted for
    A1's deployed 12,789,864)."""
    quoted = [int(n.replace(",", "")) for n in re.findall(r"(\d{1,3}(?:,\d{3})+) params", NOTES[name])]
    with torch.device("meta"):
        counts = [count_params(vb.create_model(name, deploy=True)), count_params(vb.create_model(name))]
    assert quoted == counts
