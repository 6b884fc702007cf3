"""visionblocks.measure: counting, the paired-round timing routine on modules of known cost (real sleeps, and a
fake clock with injected disturbances), the machine line, units, tables."""
import random
import threading
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
    assert t.warmup >= 2 and fast.calls == slow.calls == t.warmup + 7   # warm-up (until stable), then the rounds


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
    with pytest.raises(ValueError, match="rounds"):
        measure.time_callables({"a": lambda: a(x)}, rounds=0)


def test_reset_runs_before_each_call_outside_the_timed_region():
    calls = []
    t = measure.time_callables({"f": lambda: calls.append("f")}, warmup=1, rounds=4,
                               reset={"f": lambda: (calls.append("reset"), time.sleep(0.02))})
    assert calls == ["reset", "f"] * (t.warmup + 4)
    assert t.median("f") < 10                  # the 20 ms of the reset are not timed


class FakeClock:
    """A clock the timed callables advance by their (known) cost: timing without the machine's noise."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def cost(self, seconds_of_call):
        """A callable costing ``seconds_of_call()`` seconds (a function, so that each call can differ)."""
        def fn():
            self.t += seconds_of_call()
        return fn


def test_warm_up_runs_until_the_last_rounds_are_stable_and_is_capped():
    clock = FakeClock()
    costs = iter([0.050, 0.020, 0.010, 0.005, 0.002] + [0.001] * 1000)   # a cache warming up
    t = measure.time_callables({"f": clock.cost(lambda: next(costs))}, warmup=2, rounds=10, clock=clock)
    assert t.warmup == 5 + 3                   # until the last 3 warm-up rounds agree within 20%
    assert t.ms["f"] == pytest.approx([1.0] * 10)   # no warm-up cost leaks into the timed rounds
    flip = iter([0.001, 0.004] * 1000)         # never stable: capped
    t = measure.time_callables({"f": clock.cost(lambda: next(flip))}, warmup=2, rounds=4, max_warmup=6, clock=clock)
    assert t.warmup == 6
    t = measure.time_callables({"f": clock.cost(lambda: next(flip))}, warmup=2, rounds=4, max_warmup=100,
                               max_warmup_time=0.02, clock=clock)
    assert t.warmup == 8                       # 8 rounds of 1 + 4 ms = 20 ms of warm-up
    t = measure.time_callables({"f": clock.cost(lambda: next(flip))}, warmup=0, rounds=4, clock=clock)
    assert t.warmup == 0


def test_min_time_counts_the_timed_calls_of_the_row():
    clock = FakeClock()
    fns = {"a": clock.cost(lambda: 1 / 1024), "b": clock.cost(lambda: 3 / 1024)}   # exact binary fractions
    t = measure.time_callables(fns, warmup=1, rounds=5, min_time=100 * 4 / 1024, clock=clock)
    assert t.rounds == 100 and t.median("a") == pytest.approx(1000 / 1024) and t.ratio("b", "a") == 3


def test_known_costs_keep_their_order_under_injected_disturbances_and_a_noisy_row_is_flagged():
    """1, 2 and 3 ms callables with 15% of their calls hit by a 20 ms spike (a disturbing process), and one
    whose cost is uniform in 1-6 ms: medians keep the order and the true costs within 5%; only the noisy one
    is flagged."""
    rng = random.Random(0)
    clock = FakeClock()

    def disturbed(ms):
        return lambda: ms / 1e3 + (0.020 if rng.random() < 0.15 else 0.0)

    fns = {"one": clock.cost(disturbed(1)), "three": clock.cost(disturbed(3)), "two": clock.cost(disturbed(2)),
           "noisy": clock.cost(lambda: rng.uniform(0.001, 0.006))}
    t = measure.time_callables(fns, warmup=2, rounds=200, clock=clock)
    assert sorted(["one", "two", "three"], key=t.median) == ["one", "two", "three"]
    for name, ms in (("one", 1), ("two", 2), ("three", 3)):
        assert t.median(name) == pytest.approx(ms, rel=0.05)
        assert t.spread(name) < 0.1
    assert t.ratio("three", "one") == pytest.approx(3, rel=0.05)
    assert t.spread("noisy") > 0.5 and t.unstable() == ["noisy"] and t.unstable(max_spread=2.0) == []
    # the mean, which the spikes pull up by 3 ms, would not keep the true costs
    assert sum(t.ms["one"]) / t.rounds > 1.5


def test_known_costs_keep_their_order_under_a_disturbing_thread():
    """Real time: 1 ms and 3 ms sleeps while another thread holds the interpreter in bursts (a waking sleeper
    waits for it: spikes of up to the switch interval in some rounds).  The medians keep the order."""
    stop = threading.Event()

    def disturb():
        while not stop.is_set():
            end = time.perf_counter() + 0.02
            while time.perf_counter() < end:   # busy: holds the GIL between switches
                pass
            time.sleep(0.06)

    one, three = Sleepy(1), Sleepy(3)
    x = torch.randn(2, 2)
    th = threading.Thread(target=disturb, daemon=True)
    th.start()
    try:
        t = measure.time_callables({"three": lambda: three(x), "one": lambda: one(x)}, warmup=2, rounds=60)
    finally:
        stop.set()
        th.join()
    assert 1 <= t.median("one") < t.median("three") and t.ratio("three", "one") > 1.5


def test_spread_and_unstable_on_given_times():
    t = measure.Timings({"steady": [1.0, 1.1, 1.0, 0.9, 1.0], "wide": [1.0, 5.0, 1.0, 5.0, 1.0]})
    assert t.spread("steady") < 0.3 < t.spread("wide") and t.unstable() == ["wide"]
    assert measure.Timings({"x": [0.0, 0.0]}).spread("x") == 0.0


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
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    line = measure.machine_description()
    assert torch.__version__ in line and f"{torch.get_num_threads()} threads" in line
    assert "MALLOC_MMAP_THRESHOLD_=1000000000" in line and "\n" not in line
    assert measure.malloc_settings() == "MALLOC_MMAP_THRESHOLD_=1000000000, MALLOC_TRIM_THRESHOLD_ unset"


@pytest.mark.parametrize("value,text", [
    (8192, "8.19 K"), (580, "580"), (1_234_000_000, "1.23 G"), (25_557_032, "25.6 M"), (999_700, "1 M"),
    (4.1e12, "4.1 T"), (12.5, "12.5"), (0, "0"), (None, "—"),
])
def test_format_si(value, text):
    assert measure.format_si(value) == text


def test_format_table_text_and_markdown():
    rows = [["se", 580, 0.123456, None], ["a|b", 12345678, 12345.6, "x"]]
    text = measure.format_table(rows, ["name", "params", "ms", "note"]).splitlines()
    assert text[0].split() == ["name", "params", "ms", "note"] and set(text[1].replace(" ", "")) == {"-"}
    assert text[2].split() == ["se", "580", "0.1235", "—"] and text[3].split() == ["a|b", "12,345,678", "12346", "x"]
    assert text[0].index("params") == text[2].index("580") == text[3].index("12,345,678")   # aligned columns
    md = measure.format_table(rows, ["name", "params", "ms", "note"], markdown=True).splitlines()
    assert md[:2] == ["| name | params | ms | note |", "|---|---|---|---|"]
    assert md[3] == "| a/b | 12,345,678 | 12346 | x |"


def test_quartiles_stay_within_the_times():
    """statistics.quantiles' default ("exclusive") extrapolated beyond the data at a few rounds: an IQR of 3 ms
    for times 1 and 3 ms, inflating spreads and flags."""
    t = measure.Timings({"a": [1.0, 3.0], "b": [1.0, 2.0, 3.0], "c": [float(i) for i in range(1, 11)]})
    assert t.iqr("a") == 1.0 and t.iqr("b") == 1.0 and t.iqr("c") == 4.5   # numpy.percentile's 75 - 25
    assert measure.Timings({}).rounds == 0
    z = measure.Timings({"n": [1.0, 0.0, 0.0], "d": [0.0, 0.0, 2.0]})
    assert z.ratio("n", "d") == 1.0                  # inf, 1 (both 0), 0: median 1, no ZeroDivisionError


@pytest.mark.parametrize("kw, msg", [({"min_time": float("nan")}, "min_time"), ({"stable_band": float("nan")},
                                     "stable_band"), ({"min_time": float("inf")}, "min_time"),
                                    ({"device": "garbage"}, "device must be a torch device")])
def test_time_callables_refuses_values_it_cannot_use(kw, msg):
    with pytest.raises(ValueError, match=msg):
        measure.time_callables({"f": lambda: None}, warmup=0, rounds=1, **kw)
