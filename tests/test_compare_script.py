"""The side-by-side comparison script (benchmarks/compare_fightingcv.py): what it can do without its optional
``compare`` extra, and a whole run against a stand-in peer (its timing is visionblocks.measure's, tested in
tests/test_measure.py)."""
import importlib
import importlib.util
import pathlib
import sys
import types

import pytest
import torch
import torch.nn as nn

import visionblocks as vb

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "compare_fightingcv.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_fightingcv", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # its dataclasses resolve their annotations through sys.modules
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


class StandInSE(nn.Module):
    """A stand-in for the peer's SEAttention: x * sigmoid(fc(mean(x)))."""

    def __init__(self, channel):
        super().__init__()
        self.fc = nn.Linear(channel, channel)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(x.mean((2, 3))))[:, :, None, None]


def test_without_the_compare_extra_it_exits_2_and_says_what_to_install(compare, monkeypatch, capsys):
    real = importlib.import_module

    def no_peer(name, *args, **kwargs):
        if name == "fightingcv_attention":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(compare.importlib, "import_module", no_peer)
    assert compare.main(["--names", "se"]) == 2
    assert "pip install 'visionblocks[compare]'" in capsys.readouterr().err


def test_a_run_against_a_stand_in_peer_gives_counts_timings_and_a_markdown_row(compare, monkeypatch):
    peer = types.ModuleType("fightingcv_attention.attention.SEAttention")
    peer.SEAttention = StandInSE
    monkeypatch.setitem(sys.modules, peer.__name__, peer)
    spec = next(s for s in compare.SPECS if s.name == "se")
    rows = compare.run([spec], repeats=2)
    row = rows[0]
    assert "error" not in row, row
    assert row["ours_params"] == sum(p.numel() for p in vb.create_block("se", compare.C).parameters())
    assert row["peer_params"] == compare.C * compare.C + compare.C
    assert row["ours_ms"] > 0 and row["peer_ms"] > 0 and row["ratio"] > 0
    assert row["ours_fails"] == row["peer_fails"] == []
    md = compare.markdown(rows, "a machine", "python benchmarks/compare_fightingcv.py --names se")
    assert "Machine: a machine" in md and "over 1 blocks" in md
    assert any(line.startswith("| se | SEAttention.SEAttention | 28x28 | ") for line in md.splitlines())


def test_adapt_makes_leaves_that_receive_gradients(compare):
    x = torch.randn(2, 3, 4, 5).permute(0, 2, 3, 1)
    out = compare._adapt(None, (x,), requires_grad=True)
    assert out[0].is_leaf and out[0].requires_grad and out[0].is_contiguous()
    assert not compare._adapt(None, (x,))[0].requires_grad
