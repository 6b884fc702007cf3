"""`visionblocks bench`: options, errors (exit 2, one line), the files it writes, units, models, floors,
flags and re-measuring (with a fake timer), compile."""
import csv
import json
import re
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks import bench
from visionblocks.cli import main
from visionblocks.registry import unregister_block

TINY = ["--shape", "8,9,7", "--batch", "2", "--repeats", "2", "--warmup", "1", "--min-time", "0", "--quiet"]


def test_bench_writes_parseable_csv_json_md(tmp_path, capsys):
    assert main(["bench", "--names", "se,eca", *TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MALLOC_MMAP_THRESHOLD_" in out and "2 blocks measured, 0 failed" in out
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    assert [r["name"] for r in rows] == ["se", "eca"]
    data = json.load(open(tmp_path / "bench.json"))
    se = data["results"][0]
    assert se["input_shape"] == "2x8x9x7"
    assert se["params"] == sum(p.numel() for p in vb.create_block("se", 8).parameters())   # raw numbers
    assert isinstance(se["flops"], int) and se["macs"] == se["flops"] // 2
    assert se["fwd_ms"] > 0 and se["fwd_bwd_ms"] > 0 and se["peak_mem_mb"] > 0 and se["error"] == ""
    assert se["floor_passes"] == 1.5 and se["floor_ms"] == pytest.approx(1.5 * se["mul_ms"])
    md = open(tmp_path / "bench.md").read()
    assert md.startswith("Machine: ") and ("| se | attention |" in md or "| se * | attention |" in md)


def test_min_time_is_used_and_reported(capsys, monkeypatch):
    seen = {}
    real = bench.measure.time_callables

    def spy(fns, **kw):
        seen.update(kw, names=list(fns))
        return real(fns, **kw)

    monkeypatch.setattr(bench.measure, "time_callables", spy)
    assert main(["bench", "--names", "se", *TINY, "--min-time", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "min time 0.05 s" in out and "MALLOC_TRIM_THRESHOLD_" in out and "torch threads:" in out
    assert seen["min_time"] == 0.05 and seen["rounds"] == 2 and seen["names"] == ["fwd", "fwd_bwd", "mul"]


def test_flops_and_macs_are_labelled_and_consistent():
    r = bench.bench_block("mbconv", bench.BenchConfig(batch=1, shape=(16, 8, 8), repeats=1, warmup=1))
    assert r.error == ""
    # the 1x1 expansion alone is 16*96*64 MACs; MACs = FLOPs / 2
    assert r.macs > 16 * 96 * 64 and r.flops == 2 * r.macs
    assert r.mul_ms is None and r.floor_ms is None   # not a gate: no floor


def test_failing_block_is_reported_and_run_goes_on(capsys):
    @vb.register_block("bench_broken_for_test", family="attention", layout="nchw", paper="toy", url="https://x.org",
                       example=vb.Example(args=(4,), input_shape=(1, 4, 3, 3)))
    class Broken(nn.Module):
        """Always fails."""

        def __init__(self, channels):
            super().__init__()

        def forward(self, x):
            raise RuntimeError("boom")

    try:
        assert main(["bench", "--names", "bench_broken_for_test,se", *TINY]) == 0
        out = capsys.readouterr().out
        assert "RuntimeError: boom" in out and "1 blocks measured, 1 failed" in out
        # every row failed: nothing was measured, and the status says so (it was 0)
        assert main(["bench", "--names", "bench_broken_for_test", *TINY]) == 1
        assert "0 blocks measured, 1 failed" in capsys.readouterr().out
    finally:
        unregister_block("bench_broken_for_test")


def _run_cli(argv, capsys):
    """``main(argv)`` in this process: (exit status, stderr)."""
    try:
        rc = main(argv)
    except SystemExit as e:   # argparse errors
        rc = e.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("argv,msg", [
    (["bench", "--names", "nope"], "unknown block 'nope'"),
    (["bench", "--shape", "3,4"], "--shape"),
    (["bench", "--repeats", "0"], "positive integer"),
    (["bench", "--dtype", "int8"], "invalid choice"),
    (["bench", "--device", "tpu"], "--device"),
    (["bench", "--min-time", "-1"], "non-negative"),
    (["bench", "--max-spread", "0"], "positive number"),
    (["bench", "--models", "nope"], "unknown model 'nope'"),
    (["bench", "--models", "nope*"], "--models 'nope*' matches no model"),
    (["bench", "--models", "resnet18", "--names", "se"], "cannot be combined"),
    (["bench", "--models", "resnet18", "--size", "0"], "--size"),
])
def test_bad_options_exit_2_with_one_line(argv, msg, capsys):
    rc, err = _run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and msg in lines[0], err


def test_bad_option_exits_2_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "visionblocks", "bench", "--models", "zz*"], capture_output=True,
                          text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "matches no model" in lines[0], proc.stderr


def test_plot_writes_png(tmp_path):
    png = tmp_path / "b.png"
    assert main(["bench", "--names", "se,eca,cbam", *TINY, "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _result(**kw):
    base = dict(name="x", family="attention", layout="nchw", input_shape="8x256x28x28", params=8192,
                flops=1_234_000_000, macs=617_000_000, fwd_ms=1.5, fwd_iqr_ms=0.1, fwd_bwd_ms=4.0, fwd_bwd_iqr_ms=0.2)
    base.update(kw)
    return bench.BenchResult(**base)


def test_table_counts_in_human_units_and_flagged_rows_marked(tmp_path):
    rows = [_result(name="good"), _result(name="noisy", flags="fwd spread 80%")]
    text = bench.format_results(rows)
    assert "8.19 K" in text and "1.23 G" in text and "617 M" in text and "e-0" not in text
    lines = text.splitlines()
    assert lines[2].startswith("good ") and lines[3].startswith("noisy *") and "fwd spread 80%" in lines[3]
    assert "speed-up" not in lines[0] and "floor" not in lines[0]   # optional columns only when measured
    paths = bench.write_outputs(rows, str(tmp_path), "machine")
    raw = list(csv.DictReader(open(paths[0])))
    assert raw[0]["params"] == "8192" and raw[0]["flops"] == "1234000000"   # CSV keeps raw numbers
    assert "* flagged" in open(paths[2]).read()


def test_plot_draws_flagged_rows_apart(tmp_path):
    pytest.importorskip("matplotlib")
    png = bench.plot([_result(name="good"), _result(name="noisy", params=100, flags="fwd spread 80%")],
                     str(tmp_path / "p.png"), x="flops")
    assert open(png, "rb").read()[:4] == b"\x89PNG"


def test_select_models_names_and_patterns():
    assert bench.select_models("resnet50, se_resnet50") == ["resnet50", "se_resnet50"]
    assert bench.select_models("resnet*") == vb.list_models("resnet*") and len(vb.list_models("resnet*")) >= 3
    assert bench.select_models("resnet18,resnet1*") == ["resnet18"] + [n for n in vb.list_models("resnet1*")
                                                                       if n != "resnet18"]   # no duplicates
    assert bench.select_models("RESNET18") == ["resnet18"]
    with pytest.raises(ValueError, match="matches no model"):
        bench.select_models("resnet18,zz*")
    with pytest.raises(ValueError, match="unknown model"):
        bench.select_models("resnet_18_nope")


@pytest.mark.slow
def test_models_bench_from_the_command_line(capsys, tmp_path):
    """A real model row, end to end (about 10 s on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    try:   # one thread: a model's round stays short on a loaded 2-core machine
        assert main(["bench", "--models", "resnet18", "--size", "32", "--batch", "2", "--repeats", "1",
                     "--warmup", "1", "--min-time", "0", "--threads", "1", "--quiet", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("resnet18"))
    assert "model" in row and "2x3x32x32" in row and "11.7 M" in row
    assert "1 models measured, 0 failed" in out
    r = json.load(open(tmp_path / "bench.json"))["results"][0]
    assert r["error"] == "" and r["params"] == 11_689_512 and r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0


class FakeTimer:
    """Stands in for measure.time_callables: returns the given per-round times, one set per call."""

    def __init__(self, *timings):
        self.timings, self.calls, self.fns = list(timings), 0, None

    def __call__(self, fns, **kw):
        self.fns = fns
        ms = self.timings[min(self.calls, len(self.timings) - 1)]
        self.calls += 1
        return bench.measure.Timings({k: list(ms[k]) for k in fns})


CFG = bench.BenchConfig(batch=2, shape=(8, 6, 6), repeats=1, warmup=1)


def test_models_have_the_same_columns_as_blocks(monkeypatch):
    fake = FakeTimer({"fwd": [3.0] * 3, "fwd_bwd": [9.0] * 3})
    monkeypatch.setattr(bench.measure, "time_callables", fake)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        r = bench.bench_model("resnet18", bench.BenchConfig(batch=2, model_size=(32, 32)))
    finally:
        torch.set_num_threads(threads)
    assert r.error == "" and (r.family, r.input_shape, r.params) == ("model", "2x3x32x32", 11_689_512)
    assert set(fake.fns) == {"fwd", "fwd_bwd"} and r.fwd_ms == 3.0 and r.fwd_bwd_ms == 9.0 and r.peak_mem_mb > 0
    row = bench.format_results([r]).splitlines()[2]
    # resnet18: 1.82 G MACs at 224x224, so about 2 x 1.82 G x (32/224)^2 = 74 M MACs for two 32x32 images
    assert row.startswith("resnet18") and "11.7 M" in row and "150 M" in row and "75 M" in row


def test_floor_is_passes_times_the_multiply_measured_in_the_same_rounds(monkeypatch):
    fake = FakeTimer({"fwd": [6.0, 6.0, 6.0], "fwd_bwd": [20.0] * 3, "mul": [2.0, 2.0, 2.0]})
    monkeypatch.setattr(bench.measure, "time_callables", fake)
    r = bench.bench_block("cbam", CFG)
    assert r.error == "" and r.floor_passes == bench.GATE_PASSES["cbam"].passes == 4.0
    assert r.mul_ms == 2.0 and r.floor_ms == 8.0 and r.floor_ratio == pytest.approx(0.75)
    fake.timings[0]["fwd"] = [12.0] * 3
    r = bench.bench_block("cbam", CFG)
    assert r.floor_ratio == pytest.approx(1.5) and "1.50x" in bench.format_results([r]) and "x*s ms" in \
        bench.format_results([r])
    with torch.no_grad():   # the floor's callable is one broadcast multiply of the block's input
        fake.fns["mul"]()
    r = bench.bench_block("mbconv", CFG)
    assert "mul" not in fake.fns and r.floor_ms is None
    assert set(bench.GATE_PASSES) == {"se", "eca", "cbam", "coord_attention", "sge", "shuffle_attention",
                                      "triplet_attention"}
    # the fused count is a lower bound of the eager one; every count is argued
    assert all(g.passes >= g.fused >= 1 and g.why and g.fused_why for g in bench.GATE_PASSES.values())


def test_forward_slower_than_forward_backward_is_remeasured_then_flagged(monkeypatch):
    bad = {"fwd": [9.0] * 3, "fwd_bwd": [5.0] * 3, "mul": [1.0] * 3}
    good = {"fwd": [2.0] * 3, "fwd_bwd": [5.0] * 3, "mul": [1.0] * 3}
    fake = FakeTimer(bad, good)
    monkeypatch.setattr(bench.measure, "time_callables", fake)
    r = bench.bench_block("se", CFG)
    assert fake.calls == 2 and r.remeasured == 1 and r.flags == "" and r.fwd_ms == 2.0
    fake = FakeTimer(bad)
    monkeypatch.setattr(bench.measure, "time_callables", fake)
    r = bench.bench_block("se", CFG)
    assert fake.calls == 1 + CFG.remeasure and "fwd>fwd+bwd after 2 re-measurements" in r.flags
    assert r.fwd_ms == 9.0   # reported, but flagged


def test_wide_spread_is_flagged(monkeypatch):
    fake = FakeTimer({"fwd": [1.0, 5.0, 1.0, 5.0, 1.0], "fwd_bwd": [9.0, 9.1, 9.0, 9.2, 9.0], "mul": [1.0] * 5})
    monkeypatch.setattr(bench.measure, "time_callables", fake)
    r = bench.bench_block("se", CFG)
    assert r.flags.startswith("fwd spread") and "fwd+bwd" not in r.flags
    r = bench.bench_block("se", bench.BenchConfig(batch=2, shape=(8, 6, 6), max_spread=5.0))
    assert r.flags == ""


def test_compiled_copies_are_timed_in_the_same_rounds_with_a_fresh_dynamo_cache(monkeypatch):
    fake = FakeTimer({"fwd": [4.0] * 3, "fwd_compiled": [2.0] * 3, "fwd_bwd": [12.0] * 3,
                      "fwd_bwd_compiled": [8.0] * 3, "mul": [1.0] * 3})
    monkeypatch.setattr(bench.measure, "time_callables", fake)
    resets, compiled = [], []
    monkeypatch.setattr(torch.compiler, "reset", lambda: resets.append(1))
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)   # what runs is the fake timer's
    cfg = bench.BenchConfig(batch=2, shape=(8, 6, 6), compile=True)
    rows = [bench.bench_block(n, cfg) for n in ("se", "eca")]
    assert set(fake.fns) == {"fwd", "fwd_compiled", "fwd_bwd", "fwd_bwd_compiled", "mul"}   # one call: same rounds
    assert len(resets) == 2   # each row compiles afresh (shared frames would hit dynamo's recompile limit)
    assert [m.training for m in compiled] == [False, True] * 2   # the eval module and the train module
    assert rows[0].fwd_speedup == 2.0 and rows[0].fwd_bwd_speedup == 1.5 and rows[1].fwd_compiled_ms == 2.0
    assert bench.compile_summary(rows) == ("torch.compile speed-up (eager / compiled, geometric mean): "
                                           "forward 2.00x over 2 rows; forward+backward 1.50x over 2 rows")
    assert bench.compile_summary([_result(fwd_speedup=4.0, fwd_bwd_speedup=1.0), _result(fwd_speedup=1.0)]) \
        .startswith("torch.compile speed-up (eager / compiled, geometric mean): forward 2.00x over 2 rows")


def test_channels_last_and_bfloat16_run_on_cpu():
    cfg = bench.BenchConfig(batch=2, shape=(8, 6, 6), repeats=1, warmup=1, dtype="bfloat16", channels_last=True)
    r = bench.bench_block("cbam", cfg)
    assert r.error == "" and r.fwd_ms > 0 and r.fwd_bwd_ms > 0


@pytest.mark.parametrize("name", ["dynamic_conv", "cond_conv"])
def test_channels_last_takes_blocks_with_5d_kernel_banks(name):
    """model.to(memory_format=torch.channels_last) refuses their (K, O, I, k, k) banks; the bench converts the
    convolution weights only."""
    cfg = bench.BenchConfig(batch=2, shape=(8, 6, 6), repeats=1, warmup=1, channels_last=True)
    r = bench.bench_block(name, cfg)
    assert r.error == "" and r.fwd_ms > 0 and r.fwd_bwd_ms > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is absent")
def test_cuda_requested_and_absent_exits_2_with_one_line(capsys):
    rc, err = _run_cli(["bench", "--names", "se", "--device", "cuda", "--dtype", "bfloat16", "--channels-last"],
                       capsys)
    assert rc == 2 and err.count("\n") == 1 and "CUDA is not available" in err


@pytest.mark.slow
def test_compile_times_compiled_and_eager_side_by_side(capsys, tmp_path):
    """torch.compile on CPU takes tens of seconds per block: slow."""
    assert main(["bench", "--names", "se,eca", *TINY, "--compile", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fwd speed-up" in out and "fwd+bwd speed-up" in out
    summary = re.search(r"torch.compile speed-up \(eager / compiled, geometric mean\): forward \S+ over (\d) rows"
                        r"(?: \((\d) flagged left out\))?", out)
    assert summary and int(summary[1]) + int(summary[2] or 0) == 2   # flagged rows counted, not averaged
    assert summary[0] in open(tmp_path / "bench.md").read()          # the files say what the console says
    assert any(summary[0] in n for n in json.load(open(tmp_path / "bench.json"))["notes"])
    for r in json.load(open(tmp_path / "bench.json"))["results"]:
        assert r["error"] == "" and r["fwd_compiled_ms"] > 0 and r["fwd_bwd_compiled_ms"] > 0
        assert r["fwd_speedup"] > 0 and r["fwd_bwd_speedup"] > 0


@pytest.fixture
def no_timing(monkeypatch):
    """Fails the test when anything is benchmarked (errors that must come before any timing)."""
    def timed(*a, **kw):
        raise AssertionError("a row was benchmarked before the error")
    monkeypatch.setattr(bench, "bench_block", timed)
    monkeypatch.setattr(bench, "bench_model", timed)


def _one_line_exit_2(argv, capsys, *msgs):
    rc, err = _run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("visionblocks bench: error:"), err
    assert all(m in lines[0] for m in msgs), lines[0]


def test_unusable_output_paths_exit_2_before_any_timing(tmp_path, capsys, no_timing):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    (tmp_path / "d" / "bench.json").mkdir(parents=True)
    new = tmp_path / "new"
    cases = [(["--out", str(afile)], "is not a directory"),
             (["--out", str(afile / "sub")], "is not a directory"),
             (["--plot", str(afile / "x.png")], "is not a directory"),
             (["--plot", str(tmp_path / "d")], "is a directory"),
             (["--out", str(tmp_path / "d")], "bench.json is a directory"),
             # the --out directory is not left behind when --plot is refused
             (["--out", str(new / "sub"), "--plot", str(afile / "p.png")], "is not a directory")]
    if sys.platform.startswith("linux"):
        cases.append((["--out", "/proc/visionblocks-nonexistent"], "cannot write in"))
    for argv, msg in cases:
        _one_line_exit_2(["bench", "--names", "cbam", *TINY, *argv], capsys, argv[-1], msg)
    assert afile.read_text() == "keep" and not new.exists() and sorted(p.name for p in tmp_path.iterdir()) == \
        ["afile", "d"]


def test_write_failure_at_the_end_exits_2_and_leaves_no_partial_set(tmp_path, capsys, monkeypatch):
    out, png = tmp_path / "out", tmp_path / "plots" / "b.png"
    out.mkdir()
    (out / "bench.csv").write_text("old")

    def disk_full(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bench.json, "dump", disk_full)
    fake = FakeTimer({"fwd": [2.0] * 3, "fwd_bwd": [5.0] * 3, "mul": [1.0] * 3})
    monkeypatch.setattr(bench.measure, "time_callables", fake)
    _one_line_exit_2(["bench", "--names", "cbam", *TINY, "--out", str(out), "--plot", str(png)], capsys,
                     f"cannot write {out / 'bench.json'}: No space left on device")
    assert [p.name for p in out.iterdir()] == ["bench.csv"] and (out / "bench.csv").read_text() == "old"
    assert not png.parent.exists()   # no plot either, and not the directory made for it before the timing
    monkeypatch.undo()
    with pytest.raises(ValueError, match="out_dir .*is not a directory"):   # the Python API: a ValueError too
        bench.write_outputs([_result()], str(out / "bench.csv"), "machine")


@pytest.mark.parametrize("argv,msg", [
    (["--names", ""], "--names '' names no block"),
    (["--models", ""], "--models: no model named"),
    (["--models", "resnet18", "--shape", "3,8,8", "--size", "8"], "--shape"),
    (["--models", "resnet18", "--shape", "3,8,8", "--test-size"], "--shape"),
    # options that did not apply were taken silently (blocks at 256x56x56, batch 4, nothing written)
    (["--names", "se", "--size", "8"], "--size/--test-size set the models' input"),
    (["--names", "se", "--test-size"], "--size/--test-size set the models' input"),
    (["--names", "se", "--shape", "4,16,8,8", "--batch", "2"], "two batch sizes"),
    (["--names", "se", "--out", ""], "--out: expected a path"),
    (["--names", "se", "--plot", " "], "--plot: expected a path"),
    # a malformed device string was a traceback where CUDA exists ("cudaxyz", "cuda:-1")
    (["--names", "se", "--device", "cudaxyz"], "--device must be cpu or cuda[:i], got 'cudaxyz'"),
    (["--names", "se", "--device", "cuda:-1"], "--device must be cpu or cuda[:i], got 'cuda:-1'"),
])
def test_empty_selection_and_conflicting_sizes_exit_2_before_any_timing(argv, msg, capsys, no_timing):
    _one_line_exit_2(["bench", *argv], capsys, msg)


def test_a_plot_format_matplotlib_does_not_write_is_refused_before_any_timing(tmp_path, capsys, no_timing):
    """It used to fail after the whole measurement, with matplotlib's message, taking the CSV/JSON/MD with it."""
    pytest.importorskip("matplotlib")
    _one_line_exit_2(["bench", "--names", "se", "--out", str(tmp_path / "o"), "--plot", str(tmp_path / "p.txt")],
                     capsys, "--plot", "does not write 'txt' files", "png")
    assert not (tmp_path / "o").exists()


def test_a_block_named_twice_is_measured_once(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(bench, "bench_block", lambda n, cfg: seen.append(n) or _result(name=n))
    assert main(["bench", "--names", "se, se,eca,se", "--quiet"]) == 0
    assert seen == ["se", "eca"]


@pytest.mark.parametrize("name", ["cond_conv", "deformable_conv", "dynamic_conv", "modulated_deformable_conv",
                                  "involution", "mbconv"])
def test_conv_blocks_run_at_stride_1_as_inside_a_stage(name):
    """Their examples downsample (stride 2): the bench kept that, so their FLOPs and latency were those of a
    quarter of the map beside stride-1 peers, with the full input in the input column."""
    cfg = bench.BenchConfig(batch=1, shape=(16, 12, 12))
    m, (x,) = bench.build_for_bench(vb.block_info(name), cfg)
    with torch.no_grad():
        y = m.eval()(x)
    assert x.shape == (1, 16, 12, 12) and y.shape == (1, 16, 12, 12)


def test_the_upsampling_transposed_conv_keeps_its_stride():
    m, (x,) = bench.build_for_bench(vb.block_info("transposed_conv"), bench.BenchConfig(batch=1, shape=(16, 6, 6)))
    with torch.no_grad():
        assert m(x).shape == (1, 16, 12, 12)


def test_the_files_give_the_runs_flag_threshold_and_the_compile_summary(tmp_path):
    """bench.md's legend said 30% whatever --max-spread was (its header line said the run's)."""
    rows = [_result(name="good", fwd_speedup=2.0), _result(name="noisy", flags="fwd spread 9%", fwd_speedup=8.0)]
    paths = bench.write_outputs(rows, str(tmp_path), "machine", bench.BenchConfig(max_spread=0.05))
    md, notes = open(paths[2]).read(), json.load(open(paths[1]))["notes"]
    assert "IQR/median is above 5%" in md and "30%" not in md
    summary = "forward 2.00x over 1 rows (1 flagged left out)"   # the flagged 8x is not averaged in
    assert summary in md and any(summary in n for n in notes) and any("above 5%" in n for n in notes)
    assert "FLOPs and MACs of one forward of the whole batch" in md


def test_rows_a_log_axis_cannot_show_are_named_under_the_plot(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    with matplotlib.rc_context({"svg.fonttype": "none"}):   # text as text, to read it back
        svg = bench.plot([_result(name="conv", flops=10**6), _result(name="gate_without_matmuls", flops=0)],
                         str(tmp_path / "p.svg"), x="flops")
    text = open(svg).read()
    assert "not drawn (FLOPs 0" in text and "gate_without_matmuls" in text


def test_models_take_the_shape_as_their_input(monkeypatch, capsys):
    fake = FakeTimer({"fwd": [3.0] * 3, "fwd_bwd": [9.0] * 3})
    monkeypatch.setattr(bench.measure, "time_callables", fake)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert main(["bench", "--models", "resnet18", "--shape", "2,3,16,16", "--quiet"]) == 0
        row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("resnet18"))
        assert "2x3x16x16" in row
        r = bench.bench_model("resnet18", bench.BenchConfig(batch=2, shape=(1, 16, 12)))   # C: the in_chans
        assert r.error == "" and r.input_shape == "2x1x16x12"
        r = bench.bench_model("resnet18", bench.BenchConfig(batch=1, shape=(3, 16, 16), model_size=(32, 32)))
        assert r.error.startswith("ValueError") and "model_size" in r.error
    finally:
        torch.set_num_threads(threads)


def test_shape_a_block_cannot_take_is_named_in_one_warning(monkeypatch, capsys):
    fake = FakeTimer({"fwd": [2.0] * 3, "fwd_bwd": [5.0] * 3, "mul": [1.0] * 3})
    monkeypatch.setattr(bench.measure, "time_callables", fake)
    assert main(["bench", "--names", "graph_conv,se,self_attention", *TINY]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "--shape 8,9,7 does not apply to graph_conv, self_attention" in warnings[0]
    assert main(["bench", "--names", "se", *TINY]) == 0 and "warning" not in capsys.readouterr().err
