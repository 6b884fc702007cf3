"""visionblocks compare: identical recipe per variant, resumable run by run, a table and a Pareto chart; the digits demo
(slow tier) reaches >= 95 % for every variant."""
import importlib
import io
import json
import os
import time

import pytest

from visionblocks.train import TrainConfig, compare
from visionblocks.train.cli import main
from visionblocks.train.plots import pareto_front


def test_pareto_front():
    pts = [(1.0, 90.0), (2.0, 95.0), (1.5, 89.0), (3.0, 95.0), (0.5, 80.0)]
    assert pareto_front(pts) == [4, 0, 1]


def test_compare_tiny(folder_data, tmp_path):
    base = TrainConfig(model="resnet18", data=folder_data, epochs=1, batch_size=4, input_size=16, progress=False)
    out = str(tmp_path / "cmp")
    log = io.StringIO()
    res = compare(base, ["none", "se"], [0], out, bench_batch=2, bench_rounds=1, stream=log)
    assert [r["variant"] for r in res.rows] == ["none", "se"]
    none, se = res.rows
    assert se["params_m"] > none["params_m"] and se["macs_m"] >= none["macs_m"]
    for r in res.rows:
        assert 0 <= r["top1"] <= 100 and r["train_ms"] > 0 and r["infer_ms"] > 0 and r["mem_mb"] > 0
    for f in ("compare.csv", "compare.json", "compare.md", "compare.png"):
        assert os.path.exists(os.path.join(out, f))
    runs = json.load(open(os.path.join(out, "compare.json")))["runs"]
    assert runs == {"none": [os.path.join(out, "none", "seed0")], "se": [os.path.join(out, "se", "seed0")]}
    # identical recipe: the configs differ only in attn
    cfgs = [json.load(open(os.path.join(out, v, "seed0", "config.json"))) for v in ("none", "se")]
    diff = {k for k in cfgs[0] if cfgs[0][k] != cfgs[1][k]}
    assert diff == {"attn", "out"}
    # a second call reads the finished runs back (no training), then measures again
    log = io.StringIO()
    res2 = compare(base, ["none", "se"], [0], out, bench_batch=2, bench_rounds=1, stream=log)
    assert log.getvalue().count("complete, read back") == 2
    assert [r["top1"] for r in res2.rows] == [r["top1"] for r in res.rows]


@pytest.mark.slow
def test_an_interrupted_comparison_stops_and_continues(folder_data, tmp_path, monkeypatch):
    compare_mod = importlib.import_module("visionblocks.train.compare")  # the package's `compare` is the function
    base = TrainConfig(model="resnet18", data=folder_data, epochs=1, batch_size=4, input_size=16, progress=False)
    out = str(tmp_path / "cmp")
    real_train = compare_mod.train
    # the first variant's run is interrupted after its first step (as by Ctrl-C): the next one must not start
    monkeypatch.setattr(compare_mod, "train", lambda cfg, **kw: real_train(cfg, on_step=lambda e, s: True, **kw))
    res = compare(base, ["none", "se"], [0], out, bench_batch=2, bench_rounds=1, stream=io.StringIO())
    assert res.interrupted and res.rows == [] and res.files == []
    assert sorted(os.listdir(out)) == ["none"] and not os.path.exists(os.path.join(out, "compare.csv"))
    monkeypatch.setattr(compare_mod, "train", real_train)
    log = io.StringIO()
    res = compare(base, ["none", "se"], [0], out, bench_batch=2, bench_rounds=1, stream=log)
    assert not res.interrupted and [r["variant"] for r in res.rows] == ["none", "se"]
    assert "resuming at epoch 1" in log.getvalue()


def test_compare_cli_bad_variant(folder_data, tmp_path, capsys):
    rc = main(["compare", "--model", "convmixer_768_32", "--attn", "none,se", "--data", folder_data, "--epochs", "1",
               "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "takes no attention block" in err[0]
    assert not (tmp_path / "c").exists()
    # one variant that cannot take the channel count: named (it said only "channels (64) must be divisible ...")
    rc = main(["compare", "--model", "resnet18", "--attn", "none,se,shuffle_attention", "--data", folder_data,
               "--epochs", "1", "--out", str(tmp_path / "c2")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "variant 'shuffle_attention' does not build" in err[0], err
    assert not (tmp_path / "c2").exists()


def test_compare_refuses_a_repeated_seed(folder_data, tmp_path, capsys):
    """--seeds 0,0 is one run counted twice (seeds=2, spread 0): refused like a repeated variant, nothing written."""
    from visionblocks.train import TrainError
    base = TrainConfig(model="resnet18", data=folder_data, epochs=1, batch_size=4, input_size=16, progress=False)
    with pytest.raises(TrainError, match="seed twice"):
        compare(base, ["none"], [0, 0], str(tmp_path / "c"), bench_batch=2, bench_rounds=1, stream=io.StringIO())
    assert not (tmp_path / "c").exists()
    rc = main(["compare", "--model", "resnet18", "--attn", "none", "--seeds", "0,0", "--data", folder_data,
               "--epochs", "1", "--batch-size", "4", "--input-size", "16", "--quiet", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "lists a seed twice" in err[0], err
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_digits_demo(tmp_path):
    """The README's demo: resnet18 with none/se/cbam on the digits, 3 epochs: every variant >= 95 % top-1."""
    pytest.importorskip("sklearn")
    t0 = time.perf_counter()
    rc = main(["compare", "--model", "resnet18", "--attn", "none,se,cbam", "--data", "digits", "--epochs", "3",
               "--out", str(tmp_path / "demo"), "--quiet"])
    assert rc == 0
    rows = json.load(open(tmp_path / "demo" / "compare.json"))["rows"]
    print(f"demo: {time.perf_counter() - t0:.0f} s;", {r["variant"]: round(r["top1"], 2) for r in rows})
    assert all(r["top1"] >= 95.0 for r in rows), rows


def test_a_failed_comparison_leaves_no_empty_folders(folder_data, tmp_path, capsys):
    # a variant's run failing before its first checkpoint removed OUT/<variant>/seed0 but left OUT/<variant>/ (and
    # OUT/) behind, empty
    bad = os.path.join(folder_data, "train", "cat", "0.png")  # a header that scans, pixels that do not decode
    good = open(bad, "rb").read()
    with open(bad, "wb") as fh:
        fh.write(good[: len(good) // 2])
    out = tmp_path / "cmp"
    rc = main(["compare", "--data", folder_data, "--out", str(out), "--attn", "none,se", "--epochs", "1",
               "--batch-size", "4", "--input-size", "16", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "cannot decode image" in err[-1], err
    assert not out.exists()
