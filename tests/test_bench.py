"""`visionblocks bench`: options, errors (exit 2, one line), and the files it writes."""
import csv
import json
import subprocess
import sys

import pytest
import torch.nn as nn

import visionblocks as vb
from visionblocks import bench
from visionblocks.cli import main
from visionblocks.registry import unregister_block

TINY = ["--shape", "8,9,7", "--batch", "2", "--repeats", "2", "--warmup", "1", "--quiet"]


def test_bench_writes_parseable_csv_json_md(tmp_path, capsys):
    assert main(["bench", "--names", "se,eca", *TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MALLOC_MMAP_THRESHOLD_" in out and "2 blocks measured, 0 failed" in out
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    assert [r["name"] for r in rows] == ["se", "eca"]
    data = json.load(open(tmp_path / "bench.json"))
    se = data["results"][0]
    assert se["input_shape"] == "2x8x9x7"
    assert se["params"] == sum(p.numel() for p in vb.create_block("se", 8).parameters())
    assert se["fwd_ms"] > 0 and se["fwd_bwd_ms"] > 0 and se["peak_mem_mb"] > 0 and se["error"] == ""
    md = open(tmp_path / "bench.md").read()
    assert md.startswith("Machine: ") and "| se | attention |" in md


def test_min_time_is_used_and_reported(capsys, monkeypatch):
    seen = {}
    real = bench.measure.time_callables

    def spy(fns, **kw):
        seen.update(kw, names=list(fns))
        return real(fns, **kw)

    monkeypatch.setattr(bench.measure, "time_callables", spy)
    assert main(["bench", "--names", "se", *TINY, "--min-time", "0.05"]) == 0
    assert "min time 0.05 s" in capsys.readouterr().out
    assert seen["min_time"] == 0.05 and seen["rounds"] == 2 and seen["names"] == ["fwd", "fwd_bwd"]


def test_flops_and_macs_are_labelled_and_consistent():
    r = bench.bench_block("mbconv", bench.BenchConfig(batch=1, shape=(16, 8, 8), repeats=1, warmup=1))
    assert r.error == ""
    # the 1x1 expansion alone is 16*96*64 MACs; MACs = FLOPs / 2
    assert r.gmacs * 1e9 > 16 * 96 * 64 and r.gflops == pytest.approx(2 * r.gmacs)


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
    finally:
        unregister_block("bench_broken_for_test")


@pytest.mark.parametrize("argv,msg", [
    (["bench", "--names", "nope"], "unknown block 'nope'"),
    (["bench", "--shape", "3,4"], "--shape"),
    (["bench", "--repeats", "0"], "positive integer"),
    (["bench", "--dtype", "int8"], "invalid choice"),
    (["bench", "--device", "tpu"], "--device"),
    (["bench", "--min-time", "-1"], "non-negative"),
])
def test_bad_options_exit_2_with_one_line(argv, msg):
    proc = subprocess.run([sys.executable, "-m", "visionblocks", *argv], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], proc.stderr


def test_plot_writes_png(tmp_path):
    png = tmp_path / "b.png"
    assert main(["bench", "--names", "se,eca,cbam", *TINY, "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
