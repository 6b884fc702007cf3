"""The side-by-side comparison script (benchmarks/compare_fightingcv.py): what it can do without its optional
``compare`` extra, and its timing logic on modules of known cost."""
import importlib
import importlib.util
import pathlib
import sys
import time

import pytest
import torch
import torch.nn as nn

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


class Sleepy(nn.Module):
    """x * w, sleeping ``ms`` in forward: a module whose forward+backward costs a known time."""

    def __init__(self, ms: float):
        super().__init__()
        self.ms, self.calls = ms, 0
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.calls += 1
        time.sleep(self.ms / 1e3)
        return x * self.w


def test_without_the_compare_extra_it_exits_2_and_says_what_to_install(compare, monkeypatch, capsys):
    real = importlib.import_module

    def no_peer(name, *args, **kwargs):
        if name == "fightingcv_attention":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(compare.importlib, "import_module", no_peer)
    assert compare.main(["--names", "se"]) == 2
    assert "pip install 'visionblocks[compare]'" in capsys.readouterr().err


def test_time_pair_reports_both_medians_and_the_median_paired_ratio(compare):
    fast, slow = Sleepy(5), Sleepy(20)
    x = (torch.randn(4, 3),)
    t_fast, t_slow, ratio = compare._time_pair(fast, slow, x, x, repeats=7)
    assert 5 <= t_fast < t_slow
    assert 1.2 < ratio < 6                    # slow / fast = 4 up to the overheads of a call (not 1/4)
    assert fast.calls == slow.calls == 2 + 7  # warm-up, then the rounds, alternating


def test_time_pair_runs_more_rounds_for_fast_blocks_to_reach_min_time(compare):
    a, b = Sleepy(2), Sleepy(2)
    x = (torch.randn(4, 3),)
    compare._time_pair(a, b, x, x, repeats=3, min_time=0.2)
    assert a.calls - 2 > 3                     # more than --repeats rounds: about 0.2 s / 4 ms = 50


def test_adapt_makes_leaves_that_receive_gradients(compare):
    x = torch.randn(2, 3, 4, 5).permute(0, 2, 3, 1)
    out = compare._adapt(None, (x,), requires_grad=True)
    assert out[0].is_leaf and out[0].requires_grad and out[0].is_contiguous()
    assert not compare._adapt(None, (x,))[0].requires_grad
