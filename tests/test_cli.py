"""The visionblocks command line: output, options, and exit status 2 with a one-line message."""
import subprocess
import sys

import pytest

from visionblocks.cli import main


def test_list_prints_table(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["name", "family", "layout", "paper"]
    assert any(line.startswith("se ") and "attention" in line and "nchw" in line for line in out.splitlines())


def test_list_family_and_models(capsys):
    assert main(["list", "--family", "conv"]) == 0
    out = capsys.readouterr().out
    assert "mbconv" in out and "\ncbam " not in out
    assert main(["list", "--models", "--pattern", "resnet1*"]) == 0
    out = capsys.readouterr().out
    assert "resnet101" in out and "resnet18" in out and "resnet50" not in out


def test_info_block_and_model(capsys):
    assert main(["info", "se"]) == 0
    out = capsys.readouterr().out
    assert "arxiv.org/abs/1709.01507" in out and "reduction=16" in out
    assert "input:  (2, 64, 14, 14)" in out and "output: (2, 64, 14, 14)" in out
    assert "params: 580" in out  # 64*4+4 + 4*64+64
    assert main(["info", "resnet50"]) == 0
    assert "25.557 M" in capsys.readouterr().out


def test_info_model_prints_data_config_and_feature_table(capsys):
    assert main(["info", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "data:   input (3, 224, 224), bilinear, crop_pct 0.875 (center), mean (0.485, 0.456, 0.406)" in out
    assert "output_stride: 8, 16, 32" in out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split() == ["index", "module", "channels", "reduction"])
    table = [line.split() for line in lines[head + 2:head + 7]]
    assert table == [["0", "stem.0", "64", "2"], ["1", "stages.0", "256", "4"], ["2", "stages.1", "512", "8"],
                     ["3", "stages.2", "1024", "16"], ["4", "stages.3", "2048", "32"]]


@pytest.mark.parametrize("argv,msg", [
    (["info", "cbm"], "did you mean: cbam"),
    (["list", "--family", "nope"], "invalid choice"),
    (["bogus"], "invalid choice"),
    ([], "required"),
    (["list", "--frobnicate"], "unrecognized arguments"),
])
def test_errors_exit_2_with_one_line(argv, msg):
    proc = subprocess.run([sys.executable, "-m", "visionblocks", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], proc.stderr


def test_cli_without_numpy_prints_no_torch_warning():
    # numpy is no requirement: torch's "Failed to initialize NumPy" import warning (twice, on every call) is hidden
    # for the library's own import of torch; the command still works and its errors keep their one line
    code = ("import sys, runpy; sys.modules['numpy'] = None; sys.argv = ['visionblocks', 'info', 'nosuchblock'];"
            "runpy.run_module('visionblocks', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nosuchblock" in lines[0], proc.stderr
    assert "NumPy" not in proc.stderr


@pytest.mark.parametrize("given,name", [("sk", "selective_kernel_conv"), ("CBAM", "cbam"), ("Resnet18", "resnet18")])
def test_info_resolves_names_as_the_library_does(given, name, capsys):
    # info matched the registry's names exactly: an alias or another case was "unknown" where create_block,
    # block_info and bench --names resolve them
    assert main(["info", given]) == 0
    assert capsys.readouterr().out.split()[0] == name


def test_list_pattern_filters_blocks_and_family_is_for_blocks(capsys):
    # --pattern was ignored without --models (every block listed), --family ignored with --models, and a pattern
    # matching nothing printed an empty table with status 0
    assert main(["list", "--pattern", "*_attention"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines[2:lines.index("")]]  # (the table, then a blank line and a count)
    assert names and all(n.endswith("_attention") for n in names), names
    assert "coord_attention" in names and "cbam" not in names
    for argv in (["list", "--models", "--family", "attention"], ["list", "--models", "--pattern", "zzz"],
                 ["list", "--pattern", "zzz"]):
        proc = subprocess.run([sys.executable, "-m", "visionblocks", *argv], capture_output=True, text=True)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (argv, proc.stderr)
