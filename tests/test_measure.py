"""visionblocks.measure: counting, the paired-round timing routine on modules of known cost, the machine line,
tables."""
import time

import pytest
import torch
import torch.nn as nn

from visionblocks import measure


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


def test_time_callables_reports_medians_and_the_median_paired_ratio():
    fast, slow = Sleepy(5), Sleepy(20)
    x = torch.randn(4, 3)
    t = measure.time_callables({"fast": lambda: fast(x), "slow": lambda: slow(x)}, warmup=2, rounds=7)
    assert t.rounds == 7 and 5 <= t.median("fast") < t.median("slow")
    assert 1.2 < t.ratio("slow", "fast") < 6   # slow / fast = 4 up to the overheads of a call (not 1/4)
    assert t.iqr("fast") >= 0
    assert fast.calls == slow.calls == 2 + 7   # warm-up, then the rounds


def test_time_callables_rotates_who_goes_first():
    order = []
    fns = {n: (lambda n=n: order.append(n)) for n in "abc"}
    measure.time_callables(fns, warmup=0, rounds=3)
    assert order == list("abc" "bca" "cab")


def test_time_callables_runs_more_rounds_for_fast_callables_to_reach_min_time():
    a, b = Sleepy(2), Sleepy(2)
    x = torch.randn(4, 3)
    t = measure.time_callables({"a": lambda: a(x), "b": lambda: b(x)}, warmup=2, rounds=3, min_time=0.2)
    assert t.rounds > 3                        # about 0.2 s / 4 ms = 50 rounds
    t = measure.time_callables({"a": lambda: a(x)}, warmup=1, rounds=3, min_time=10.0, max_rounds=5)
    assert t.rounds == 5
    with pytest.raises(ValueError, match="warmup"):
        measure.time_callables({"a": lambda: a(x)}, warmup=0, min_time=1.0)


def test_reset_runs_before_each_call_outside_the_timed_region():
    calls = []
    t = measure.time_callables({"f": lambda: calls.append("f")}, warmup=1, rounds=4,
                               reset={"f": lambda: (calls.append("reset"), time.sleep(0.02))})
    assert calls == ["reset", "f"] * 5
    assert t.median("f") < 10                  # the 20 ms of the reset are not timed


def test_train_step_keeps_its_output_gradient_and_reset_clears_gradients():
    m = nn.Linear(3, 2)
    x = torch.randn(4, 3, requires_grad=True)
    step = measure.TrainStep(m, (x,))
    step()
    g = step.grads
    assert g is not None and g[0].shape == (4, 2) and g[0].stride() != (0, 0)   # dense, not an expanded scalar
    assert x.grad is not None and m.weight.grad is not None
    step.reset()
    assert x.grad is None and m.weight.grad is None
    step()
    assert step.grads is g
    torch.testing.assert_close(m.weight.grad, g[0].T @ x.detach())


def test_counts():
    lin = nn.Linear(8, 4)
    assert measure.count_params(lin) == 8 * 4 + 4
    assert measure.count_flops(lin, (torch.randn(3, 8),)) == 2 * 3 * 8 * 4
    params, macs = measure.count_macs("resnet18")
    assert params == 11_689_512 and abs(macs / 1e9 - 1.82) < 0.01
    x = torch.randn(16, 8)
    assert measure.activation_bytes(lin, (x,)) >= x.numel() * 4 + 16 * 4 * 4   # saved input + output


def test_flatten_outputs():
    a, b = torch.zeros(1), torch.ones(2)
    assert measure.flatten_outputs((a, [b, (a,)])) == [a, b, a]
    with pytest.raises(TypeError, match="tensors"):
        measure.flatten_outputs({"x": a})


def test_machine_description_names_torch_threads_and_malloc(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1000000000")
    line = measure.machine_description()
    assert torch.__version__ in line and f"{torch.get_num_threads()} threads" in line
    assert "MALLOC_MMAP_THRESHOLD_=1000000000" in line and "\n" not in line


def test_format_table_text_and_markdown():
    rows = [["se", 580, 0.123456, None], ["a|b", 12345678, 12345.6, "x"]]
    text = measure.format_table(rows, ["name", "params", "ms", "note"]).splitlines()
    assert text[0].split() == ["name", "params", "ms", "note"] and set(text[1].replace(" ", "")) == {"-"}
    assert text[2].split() == ["se", "580", "0.1235", "—"] and text[3].split() == ["a|b", "12,345,678", "12346", "x"]
    assert text[0].index("params") == text[2].index("580") == text[3].index("12,345,678")   # aligned columns
    md = measure.format_table(rows, ["name", "params", "ms", "note"], markdown=True).splitlines()
    assert md[:2] == ["| name | params | ms | note |", "|---|---|---|---|"]
    assert md[3] == "| a/b | 12,345,678 | 12346 | x |"
