"""benchmarks/gpu_report.py, the prepared GPU run: its plumbing, run here on the CPU (a device session has no time
to debug it)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_report", ROOT / "benchmarks" / "gpu_report.py")
gr = importlib.util.module_from_spec(spec)
sys.modules["gpu_report"] = gr
spec.loader.exec_module(gr)


def test_each_step_runs_in_the_gpu_setting_and_quick_restricts_the_rows(tmp_path):
    full = gr.step_commands("cuda", False, str(tmp_path))
    assert list(full) == list(gr.SHARES)
    for k in ("blocks", "models", "timm"):
        cmd = full[k]
        assert cmd[cmd.index("--device") + 1] == "cuda" and cmd[cmd.index("--dtype") + 1] == "bfloat16"
        assert "--channels-last" in cmd
    assert full["models"][full["models"].index("--models") + 1] == "*" and "--names" not in full["blocks"]
    assert "--only" not in full["timm"] and full["timm"][full["timm"].index("--size") + 1] == "224"
    quick = gr.step_commands("cpu", True, str(tmp_path))
    assert quick["models"][quick["models"].index("--models") + 1] == "resnet18" and "--names" in quick["blocks"]
    assert "--only" in quick["timm"]


def test_report_names_each_outcome_and_keeps_what_the_steps_wrote(tmp_path):
    cmds = gr.step_commands("cuda", False, str(tmp_path))
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "bench.md").write_text("| name | fwd ms |\n|---|---|\n| se | 0.01 |\n")
    (tmp_path / "timm.md").write_text("# visionblocks vs timm (x)\n\n## Blocks\n\nrow\n")
    results = {"tests": ("ok", 3.0, "3 passed in 1.0s"), "blocks": ("ok", 50.0, "66 blocks measured"),
               "models": ("timed out after 120 s", 120.0, "")}
    text = gr.report("NVIDIA H200, CUDA 13.0", results, cmds, str(tmp_path), "python3 benchmarks/gpu_report.py")
    assert "Device: NVIDIA H200, CUDA 13.0" in text
    assert "| CUDA tests | ok | 3 | 3 passed in 1.0s |" in text
    assert "| Models (`visionblocks bench --models`) | timed out after 120 s | 120 |" in text
    assert "| Side by side with timm | not run (no time left) |" in text
    assert "| se | 0.01 |" in text                                        # the blocks' table
    assert "### Blocks" in text and "# visionblocks vs timm (x)" not in text  # timm's report, one level down
    assert "--command-text" not in text and str(tmp_path) not in text


def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    assert gr.main(["--out", str(tmp_path), "--steps", "tests,nonsense"]) == 2
    assert gr.main(["--out", str(tmp_path), "--budget", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown steps nonsense" in err[0] and "--budget" in err[1]


def test_a_dry_run_on_the_cpu_writes_the_report(tmp_path):
    """The tests step for real (on the CPU its CUDA tests skip): the report and the log come back."""
    assert gr.main(["--out", str(tmp_path), "--device", "cpu", "--quick", "--steps", "tests", "--budget", "120"]) == 0
    text = (tmp_path / "benchmarks_gpu.md").read_text()
    assert "| CUDA tests | ok |" in text and "skipped" in text
    assert "tests/test_sdpa_gpu.py" in (tmp_path / "steps.log").read_text()
