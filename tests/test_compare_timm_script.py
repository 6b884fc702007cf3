"""benchmarks/compare_timm.py and fuse_latency.py: the parts that need no timm (transplant, statistics, report)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from visionblocks.measure import Timings

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


ct = _load("compare_timm")
fl = _load("fuse_latency")


class Ours(nn.Module):  # a conv-style layout of the same tensors as Theirs
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 3, 1)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.norm(self.a(x))


class Theirs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_transplant_by_position_reshapes_and_gives_the_same_function():
    ours, theirs = Ours().double().eval(), ct.randomise(Theirs().double()).eval()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    assert ct.rel_diff(theirs(x), ours(x)) > 1e-3
    ct.transplant(ours, theirs)
    assert ct.rel_diff(theirs(x), ours(x)) < 1e-12
    assert torch.equal(ours.norm.running_var, theirs.bn.running_var)


def test_transplant_rejects_a_shape_mismatch_and_a_count_mismatch():
    other = Theirs()
    other.fc = nn.Linear(5, 3)
    with pytest.raises(AssertionError, match="ours a.weight"):
        ct.transplant(Ours(), other)
    with pytest.raises(AssertionError, match="tensors in ours"):
        ct.transplant(Ours(), nn.Linear(4, 3))


def test_transplant_order_maps_a_permuted_registration():
    class Swapped(Theirs):
        def __init__(self):
            super().__init__()
            bn = self.bn
            del self.fc, self.bn
            self.bn, self.fc = bn, nn.Linear(4, 3)  # registered in the other order
    theirs = ct.randomise(Swapped().double()).eval()
    ours = Ours().double().eval()
    with pytest.raises(AssertionError):
        ct.transplant(ours, theirs)
    ct.transplant(ours, theirs, order=lambda keys: [k for k in keys if k.startswith("fc")]
                  + [k for k in keys if k.startswith("bn")])
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    assert ct.rel_diff(theirs(x), ours(x)) < 1e-12


def test_ratio_stats_are_paired_per_round():
    # ours is faster in every round though its median time is higher than timm's median
    t = Timings({"ours": [9.0, 9.0, 1.8, 1.8, 9.0], "timm": [10.0, 10.0, 2.0, 2.0, 10.0]})
    med, q1, q3 = ct.ratio_stats(t, "ours", "timm")
    assert med == pytest.approx(0.9) and q1 == pytest.approx(0.9) and q3 == pytest.approx(0.9)
    assert ct.geomean([0.5, 2.0]) == pytest.approx(1.0)


def _row(name, kind, ratio):
    m = {"ours": 1.0, "timm": 1.0, "ratio": ratio, "q1": ratio, "q3": ratio, "rounds": 15}
    return {"name": name, "kind": kind, "config": f"cfg {name}", "shape": "8x8", "train": m, "eval": m}


def test_markdown_gives_geomeans_and_a_reason_for_rows_not_ahead(monkeypatch):
    monkeypatch.setitem(ct.REASONS, "slow", "because")
    rows = [_row("fast", "block", 0.5), _row("slow", "block", 2.0), _row("net", "model", 0.8),
            {"name": "broken", "kind": "model", "config": "", "shape": "8x8", "error": "AssertionError: differ"}]
    text = ct.markdown(rows, "cmd", "machine", "versions", 128)
    assert "over 2 blocks: **train 1.000**, **eval 1.000**" in text
    assert "over 1 models: **train 0.800**" in text
    assert "**Not ahead (train, eval)**: train: beyond the run's spread; eval: beyond the run's spread; because" in text
    assert text.count("Not ahead") == 1 and "**AssertionError: differ**" in text


def test_fuse_section_is_replaced_and_kept(tmp_path):
    doc = tmp_path / "b.md"
    doc.write_text("# T\n\nold table\n")
    text = fl.replace_section(doc.read_text(), fl.SECTION + "\n\nfirst\n")
    assert text.endswith(fl.SECTION + "\n\nfirst\n") and "old table" in text
    text = fl.replace_section(text + "\n## After\n\nkeep\n", fl.SECTION + "\n\nsecond\n")
    assert "first" not in text and "second" in text and text.endswith("## After\n\nkeep\n")
    doc.write_text(text)
    regenerated = ct.keep_fuse_section("# T\n\nnew table\n", str(doc))
    assert "new table" in regenerated and "old table" not in regenerated and "second" in regenerated


def test_a_row_not_ahead_says_whether_it_is_resolved_and_what_kernels_differ():
    noisy = _row("noisy", "block", 1.05)
    noisy["train"] = {**noisy["train"], "q1": 0.9, "q3": 1.2, "census": "identical (12 kernels)"}
    assert ct._reason(noisy, ["train"]) == ("train: kernels identical (12 kernels); its [q1, q3] includes 1: no "
                                            "measurable difference in this run")
    behind = _row("behind", "block", 1.3)
    assert ct._reason(behind, ["train", "eval"]) == "train: beyond the run's spread; eval: beyond the run's spread"


def test_kernel_census_sees_an_extra_kernel_and_its_shapes():
    import torch.nn as nn
    lin = nn.Linear(8, 4)
    x = torch.randn(3, 8)
    same = ct.census_difference(ct.kernel_census(lambda: lin(x)), ct.kernel_census(lambda: lin(x)))
    assert same.startswith("identical (")
    diff = ct.census_difference(ct.kernel_census(lambda: lin(x).relu()), ct.kernel_census(lambda: lin(x)))
    assert diff.startswith("only ours: 1x clamp_min[[3, 4]]") and diff.endswith("only timm: -")   # relu's kernel


def test_fuse_latency_times_a_model_at_the_size_it_takes():
    import visionblocks as vb
    assert fl.input_size(vb.create_model("resnet18").eval(), "resnet18", 96) == (96, 96)
    # Mixer-S/16 is built for 224 x 224 (its token-mixing MLPs are sized by the token count): 96 is refused
    assert fl.input_size(vb.create_model("mixer_s16").eval(), "mixer_s16", 96) == (224, 224)


def test_fuse_latency_runs_without_timm_and_writes_its_section(tmp_path, monkeypatch):
    out = tmp_path / "fuse.md"
    monkeypatch.setenv("VB_FUSE_CHILD", "1")  # no re-exec with the malloc variables
    fl.main(["--models", "resnet18", "--size", "32", "--batch", "1", "--rounds", "1", "--min-time", "0",
             "--threads", str(torch.get_num_threads()), "--no-timm", "--out", str(out)])
    text = out.read_text()
    assert text.startswith("# visionblocks.fuse: the inference form\n") and fl.SECTION in text
    row = next(line for line in text.splitlines() if line.startswith("| resnet18 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "32x32" and cells[5] == cells[6] == "—" and cells[9] == cells[10] == "—"
    assert all(float(c) > 0 for c in cells[2:5])


def test_fuse_latency_check_catches_a_network_computing_something_else():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    x = torch.randn(2, 3, 8, 8)
    fl.check_outputs({"unfused": net, "same": net}, x)  # the control
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    other.load_state_dict(net.state_dict())
    with torch.no_grad():
        other[0].weight[0, 0, 0, 0] += 1e-3  # one weight off by 1e-3: far beyond float32 rounding
    with pytest.raises(AssertionError, match="wrong: .* of the largest output from the float64 reference"):
        fl.check_outputs({"unfused": net, "wrong": other}, x)


def test_gpu_setting_is_named_and_the_cpu_runs_analysis_left_out(monkeypatch):
    """A run in another setting (e.g. bfloat16 on cuda) says so in its title and text, and carries neither the
    committed CPU run's summary nor its per-row analyses (they were measured on the CPU in float32)."""
    monkeypatch.setitem(ct.REASONS, "slow", "because of a CPU kernel")
    monkeypatch.setattr(ct, "SUMMARY", "**Summary of the committed run**")
    setting = ct.setting_text("cuda", torch.bfloat16, True)
    assert setting == "bfloat16 on cuda, channels-last (convolution weights and 4-d inputs)"
    assert ct.setting_text() == "float32"
    rows = [_row("fast", "block", 0.5), _row("slow", "block", 2.0)]
    gpu = ct.markdown(rows, "cmd", "machine", "versions", 128, setting)
    assert gpu.startswith(f"# visionblocks vs timm ({setting})") and f"`torch.no_grad`, {setting}." in gpu
    assert "Summary of the committed run" not in gpu and "because of a CPU kernel" not in gpu
    assert "**Not ahead (train, eval)**: train: beyond the run's spread; eval: beyond the run's spread" in gpu
    cpu = ct.markdown(rows, "cmd", "machine", "versions", 128)
    assert "Summary of the committed run" in cpu and "because of a CPU kernel" in cpu


def test_unavailable_device_is_one_line_and_exit_2(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot be provoked")
    with pytest.raises(SystemExit) as e:
        ct.main(["--device", "cuda", "--no-malloc-env"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]
