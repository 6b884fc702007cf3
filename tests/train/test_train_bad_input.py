"""Bad input to visionblocks train: one line on stderr, exit status 2, nothing written or overwritten."""
import os

import pytest
import torch

from conftest import make_folder
from visionblocks.train.cli import main
from visionblocks.train.engine import TrainConfig, train
from visionblocks.train.errors import TrainError

TINY = ["--epochs", "1", "--batch-size", "4", "--input-size", "16", "--quiet"]


def _run(capsys, *argv):
    rc = main(["train", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def _one_line_error(capsys, *argv, match):
    rc, err = _run(capsys, *argv)
    assert rc == 2 and len(err) == 1 and err[0].startswith("visionblocks train: error:"), err
    assert match in err[0], err[0]
    return err[0]


def test_empty_data_dir(tmp_path, capsys):
    (tmp_path / "d" / "train").mkdir(parents=True)
    (tmp_path / "d" / "val").mkdir()
    _one_line_error(capsys, "--data", str(tmp_path / "d"), "--out", str(tmp_path / "r"), *TINY,
                    match="no class folders")
    assert not (tmp_path / "r").exists()
    _one_line_error(capsys, "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"), *TINY,
                    match="does not exist")


def test_mismatched_classes(tmp_path, capsys):
    d = make_folder(tmp_path / "d", classes=("a", "b"), val_classes=("a", "z"))
    _one_line_error(capsys, "--data", d, "--out", str(tmp_path / "r"), *TINY, match="train and val classes differ")
    assert not (tmp_path / "r").exists()


def test_attn_on_a_model_that_takes_none(folder_data, tmp_path, capsys):
    _one_line_error(capsys, "--model", "convmixer_768_32", "--attn", "se", "--data", folder_data, "--out",
                    str(tmp_path / "r"), *TINY, match="takes no attention block")
    assert not (tmp_path / "r").exists()


def test_unknown_model_and_block(folder_data, tmp_path, capsys):
    _one_line_error(capsys, "--model", "resnet19", "--data", folder_data, "--out", str(tmp_path / "r"), *TINY,
                    match="unknown model")
    rc, err = _run(capsys, "--model", "resnet18", "--attn", "nosuchblock", "--data", folder_data, "--out",
                   str(tmp_path / "r"), *TINY)
    assert rc == 2 and len(err) == 1
    assert not (tmp_path / "r").exists()


def test_bad_option_values(folder_data, tmp_path, capsys):
    for argv in (["--model-kwargs", "{not json"], ["--epochs", "0"], ["--opt", "lion"]):
        with pytest.raises(SystemExit) as e:
            main(["train", "--data", folder_data, *argv])
        assert e.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    _one_line_error(capsys, "--data", folder_data, "--out", str(tmp_path / "r"), "--ema", "1.5", *TINY,
                    match="--ema")
    _one_line_error(capsys, "--data", folder_data, "--out", str(tmp_path / "r"), "--batch-size", "1000",
                    "--epochs", "1", match="larger than the training split")



@pytest.mark.parametrize("argv,match", [
    (["--hflip", "2"], "--hflip (the flip probability) must be a number in [0, 1], got 2.0"),
    (["--hflip", "-0.5"], "--hflip"),
    (["--lr", "0"], "--lr must be a number > 0"),
    (["--momentum", "1.5"], "--momentum must be a number in [0, 1)"),
    (["--min-lr", "1", "--lr", "0.1"], "--min-lr 1 is above the peak --lr 0.1"),
])
def test_out_of_range_option_values_exit_2_with_one_line(argv, match, folder_data, tmp_path, capsys):
    _one_line_error(capsys, "--data", folder_data, "--out", str(tmp_path / "r"), *argv, *TINY, match=match)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kw,match", [
    ({"hflip": 2.0}, r"--hflip \(the flip probability\) must be a number in \[0, 1\], got 2.0"),
    ({"hflip": -0.1}, "--hflip"), ({"hflip": float("nan")}, "--hflip"), ({"hflip": "0.5"}, "--hflip"),
    ({"lr": 0.0}, "--lr must be a number > 0"), ({"momentum": 1.0}, "--momentum"),
    ({"min_lr": 0.01, "lr": 0.001}, "--min-lr"),
    ({"workers": -1}, "--workers must be an integer >= 0, got -1"), ({"limit": 0}, "--limit must be an integer >= 1"),
    ({"input_size": 0}, "--input-size"), ({"in_chans": 0}, "--in-chans"), ({"eval_batch_size": 0}, "--eval-batch-size"),
    ({"stop_after_epoch": 0}, "--stop-after-epoch"), ({"limit": 2.5}, "--limit"),
])
def test_out_of_range_config_values_are_refused_by_the_python_api(kw, match):
    with pytest.raises(TrainError, match=match):
        TrainConfig(out="unused", **kw).resolved()
    for ok in ({"hflip": 0}, {"hflip": 1.0}, {"workers": 0}, {"momentum": 0.0}, {"lr": 0.1, "min_lr": 0.1}):
        TrainConfig(**ok).resolved()


def test_a_refused_config_writes_nothing(folder_data, tmp_path):
    with pytest.raises(TrainError, match="--hflip"):
        train(TrainConfig(data=folder_data, out=str(tmp_path / "r"), hflip=1.5, epochs=1, batch_size=4,
                          input_size=16, progress=False))
    assert not (tmp_path / "r").exists()


@pytest.fixture
def done_run(folder_data, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--data", folder_data, "--out", out, *TINY]) == 0
    capsys.readouterr()
    return out


def _snapshot(d):
    return {f: open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))}


def test_run_dir_mistakes_overwrite_nothing(done_run, folder_data, tmp_path, capsys):
    before = _snapshot(done_run)
    # a new run into a directory that holds one
    _one_line_error(capsys, "--data", folder_data, "--out", done_run, *TINY, match="already holds a run")
    # a resume directory from another model / with other data / another recipe
    _one_line_error(capsys, "--resume", done_run, "--model", "resnet34", match="--model 'resnet18', not 'resnet34'")
    _one_line_error(capsys, "--resume", done_run, "--lr", "0.5", match="another run")
    other = make_folder(tmp_path / "other", classes=("x", "y", "z"))
    _one_line_error(capsys, "--resume", done_run, "--data", other, match="another run")
    assert _snapshot(done_run) == before


def test_corrupt_or_mismatched_checkpoint_is_refused(done_run, folder_data, capsys):
    ck_path = os.path.join(done_run, "last.pt")
    good = open(ck_path, "rb").read()
    with open(ck_path, "wb") as f:
        f.write(good[: len(good) // 2])
    _one_line_error(capsys, "--resume", done_run, "--epochs", "2", match="corrupt or unreadable")
    # the identity matches, the tensors do not (another architecture saved under this name)
    ck = torch.load(__import__("io").BytesIO(good), weights_only=True)
    ck["model"]["fc_extra.weight"] = torch.zeros(1)
    torch.save(ck, ck_path)
    before = _snapshot(done_run)
    _one_line_error(capsys, "--resume", done_run, "--epochs", "2", match="does not match this model")
    assert _snapshot(done_run) == before
    torch.save({"something": "else"}, ck_path)
    _one_line_error(capsys, "--resume", done_run, "--epochs", "2", match="not a visionblocks training checkpoint")


def test_fsdp_outside_torchrun_or_with_ema_is_a_clear_error(folder_data, tmp_path, capsys):
    _one_line_error(capsys, "--data", folder_data, "--out", str(tmp_path / "r"), "--fsdp", "--device", "cpu", *TINY,
                    match="run the command under torchrun")
    _one_line_error(capsys, "--data", folder_data, "--out", str(tmp_path / "r"), "--fsdp", "--ema", "0.99", *TINY,
                    match="--fsdp")
    assert not (tmp_path / "r").exists()


def test_sync_bn_on_cpu_is_a_clear_error(folder_data, tmp_path, capsys):
    _one_line_error(capsys, "--data", folder_data, "--out", str(tmp_path / "r"), "--sync-bn", "--device", "cpu",
                    *TINY, match="SyncBatchNorm")


def test_a_run_killed_before_its_first_checkpoint_starts_again(folder_data, tmp_path, capsys, monkeypatch):
    from visionblocks.train import TrainConfig, train
    from visionblocks.train import engine
    out = str(tmp_path / "killed")
    cfg = TrainConfig(data=folder_data, out=out, epochs=1, batch_size=4, input_size=16, progress=False)
    # killed (SIGKILL, power loss): no clean-up runs, config.json is there, last.pt is not
    monkeypatch.setattr(engine, "_discard_unstarted", lambda *a: None)

    def die(epoch, step):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train(cfg, on_step=die)
    assert os.listdir(out) == ["config.json"]
    before = _snapshot(out)
    # another run into that directory is refused, nothing overwritten
    _one_line_error(capsys, "--data", folder_data, "--out", out, *TINY, "--lr", "0.5", match="another run")
    assert _snapshot(out) == before
    # the same run starts again (there is nothing of it to lose)
    res = train(cfg)
    assert res.epochs_done == 1 and os.path.exists(os.path.join(out, "last.pt"))


def test_no_readable_images_and_undecodable_pixels(tmp_path, capsys):
    d = make_folder(tmp_path / "d")
    for split in ("train", "val"):  # every file of the split unreadable: a clear error, not an empty run
        for c in ("cat", "dog"):
            for f in os.listdir(os.path.join(d, split, c)):
                with open(os.path.join(d, split, c, f), "wb") as fh:
                    fh.write(b"junk")
    _one_line_error(capsys, "--data", d, "--out", str(tmp_path / "r"), *TINY, match="no readable images")
    assert not (tmp_path / "r").exists()
    # a header that reads but pixels that do not decode (a truncated PNG), found by a DataLoader worker: the
    # worker's own message, naming the file, on one line
    d2 = make_folder(tmp_path / "d2")
    bad = os.path.join(d2, "train", "cat", "0.png")
    good = open(bad, "rb").read()
    with open(bad, "wb") as fh:
        fh.write(good[: len(good) // 2])
    msg = _one_line_error(capsys, "--data", d2, "--out", str(tmp_path / "r2"), "--workers", "1", *TINY,
                          match="cannot decode image")
    assert bad in msg and "DataLoader" not in msg
    assert not (tmp_path / "r2" / "last.pt").exists()


def test_a_run_failing_before_its_first_checkpoint_leaves_nothing_that_blocks(folder_data, tmp_path, capsys):
    """A run that fails after the start but before its first checkpoint: the run directory it made is removed; in a
    directory that was there before, only its config.json goes; the corrected command then runs."""
    out = str(tmp_path / "r16")
    # a model that does not take this input size (was: exit 2, but r16/config.json left, blocking the next command)
    _one_line_error(capsys, "--model", "mixer_s16", "--data", folder_data, "--out", out, *TINY, match="mixer_s16")
    assert not os.path.exists(out)

    def die(epoch, step):
        raise RuntimeError("boom")

    cfg = TrainConfig(data=folder_data, out=out, epochs=1, batch_size=4, input_size=16, progress=False)
    with pytest.raises(RuntimeError, match="boom"):
        train(cfg, on_step=die)
    assert not os.path.exists(out)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(RuntimeError, match="boom"):
        train(TrainConfig(**{**cfg.__dict__, "out": str(mine)}), on_step=die)
    assert os.listdir(mine) == ["notes.txt"]
    # the corrected command (another recipe) is not blocked
    assert main(["train", "--data", folder_data, "--out", str(mine), *TINY, "--lr", "0.002"]) == 0
    assert os.path.exists(mine / "last.pt") and (mine / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("kwargs,match", [('{"features_only": true}', "features_only"),
                                          ('{"features_only": true, "out_indices": [1, 2]}', "features_only"),
                                          ('{"features_only": true, "output_fmt": "NHWC"}', "features_only")])
def test_backbone_options_in_model_kwargs_are_refused(kwargs, match, folder_data, tmp_path, capsys):
    msg = _one_line_error(capsys, "--data", folder_data, "--out", str(tmp_path / "r"), *TINY, "--model-kwargs",
                          kwargs, match=match)
    assert "--model-kwargs" in msg and "classifier" in msg
    assert not (tmp_path / "r").exists()


def test_a_model_whose_output_is_not_logits_is_refused_before_anything_is_written(folder_data, tmp_path, capsys,
                                                                                     monkeypatch):
    import visionblocks
    # a model that gives feature maps (B, C, H, W), not (B, classes)
    monkeypatch.setattr(visionblocks, "create_model",
                        lambda name, num_classes, in_chans, **kw: torch.nn.Conv2d(in_chans, num_classes, 3))
    msg = _one_line_error(capsys, "--data", folder_data, "--out", str(tmp_path / "r"), *TINY, match="not class logits")
    assert "(2, 2)" in msg
    assert not (tmp_path / "r").exists()
    with pytest.raises(TrainError, match="not class logits"):
        train(TrainConfig(data=folder_data, out=str(tmp_path / "r"), epochs=1, batch_size=4, input_size=16,
                          progress=False))
    assert not (tmp_path / "r").exists()


def test_the_top_level_cli_gives_a_workers_message_and_refuses_bad_out_dirs_early(tmp_path, capsys):
    # `visionblocks train` (visionblocks/cli.py) printed "Caught TrainError in DataLoader worker process 1." where
    # `python -m visionblocks.train` named the file; an --out that is a file (or under one) was a traceback (rc 1)
    # after the data and model had loaded
    from visionblocks.cli import main as top_main
    d = make_folder(tmp_path / "d")
    bad = os.path.join(d, "train", "cat", "0.png")
    good = open(bad, "rb").read()
    with open(bad, "wb") as fh:
        fh.write(good[: len(good) // 2])
    rc = top_main(["train", "--data", d, "--out", str(tmp_path / "r"), "--workers", "1", *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cannot decode image" in err[0] and bad in err[0], err
    (tmp_path / "file").write_text("x")
    for out, match in [(tmp_path / "file", "is a file, not a folder"), (tmp_path / "file" / "run", "is a file, so")]:
        rc = top_main(["train", "--data", d, "--out", str(out), *TINY])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and match in err[0], err


def test_batch_size_one_with_batch_norm_is_named(folder_data, tmp_path, capsys):
    # was torch's "Expected more than 1 value per channel when training", which names no option
    _one_line_error(capsys, "--data", folder_data, "--out", str(tmp_path / "r"), *TINY, "--batch-size", "1",
                    match="--batch-size 1 gives 1 image per step: resnet18 has batch norm layers")
    assert not (tmp_path / "r").exists()


def test_options_are_taken_only_as_spelt(folder_data, tmp_path, capsys):
    # argparse took --epoch for --epochs (and would take it for any later option starting so)
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", folder_data, "--out", str(tmp_path / "r"), "--epoch", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "unrecognized arguments: --epoch 1" in err[0], err
    assert not (tmp_path / "r").exists()


def test_ctrl_c_the_command_did_not_handle_is_one_line_and_130(capsys):
    # a SIGINT before the run's handlers are in place (loading data, building the model) was a traceback
    import argparse
    from visionblocks.train.cli import run_command

    def interrupted(args):
        raise KeyboardInterrupt

    assert run_command(argparse.Namespace(fn=interrupted, command="train")) == 130
    assert capsys.readouterr().err == "visionblocks train: interrupted\n"


def test_out_of_memory_is_one_line_and_other_runtime_errors_keep_their_traceback(capsys):
    # `train --input-size 100000` (every digit resized before --limit) was a RuntimeError traceback, exit 1
    import argparse
    from visionblocks.train.cli import run_command

    def alloc(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 71663616000 bytes. Error code 12 (Cannot allocate memory)")

    assert run_command(argparse.Namespace(fn=alloc, command="train")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("visionblocks train: error: out of memory (") and \
        "smaller size, batch or model" in err

    def bug(args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="mat1"):
        run_command(argparse.Namespace(fn=bug, command="train"))


def test_attn_none_is_the_plain_model_in_what_is_printed(folder_data, tmp_path, capsys):
    rc = main(["train", "--data", folder_data, "--out", str(tmp_path / "r"), *TINY, "--attn", "none"])
    out = capsys.readouterr().out.strip()
    assert rc == 0 and out.startswith("resnet18: val top-1"), out  # was "resnet18 + none: ..."


@pytest.mark.parametrize("kind, hidden, package", [("folder", ("PIL", "PIL.Image"), "Pillow"),
                                                   ("cifar", ("numpy",), "numpy")])
def test_a_missing_extra_is_named_in_one_line(kind, hidden, package, tmp_path, capsys, monkeypatch):
    """An install without the train extra: a folder of images (Pillow) or a CIFAR archive (numpy) was a
    ModuleNotFoundError traceback (exit 1); the digits already named the extra."""
    import sys
    from conftest import make_cifar10
    data = make_folder(tmp_path / "d") if kind == "folder" else make_cifar10(tmp_path)
    for name in hidden:   # what `import` sees where the package is not installed
        monkeypatch.setitem(sys.modules, name, None)
    _one_line_error(capsys, "--data", data, "--out", str(tmp_path / "r"), *TINY,
                    match=f"needs {package}: pip install 'visionblocks[train]'")
    assert not (tmp_path / "r").exists()


def test_a_run_without_matplotlib_says_it_has_no_curves(folder_data, tmp_path, capsys, monkeypatch):
    """compare said "note: no chart"; train wrote no curves.png (which docs/training.md lists) silently."""
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["train", "--data", folder_data, "--out", str(tmp_path / "r"), "--model", "resnet18", *TINY]) == 0
    err = capsys.readouterr().err
    assert "note: no curves.png: charts need matplotlib: pip install 'visionblocks[train]'" in err
    assert (tmp_path / "r" / "last.pt").exists() and not (tmp_path / "r" / "curves.png").exists()


def test_an_out_where_no_folder_can_be_made_is_named(folder_data, capsys):
    # /proc exists and os.access says it is writable to root; making a folder there fails: the message was
    # "[Errno 2] No such file or directory: '/proc/x'", without the option
    _one_line_error(capsys, "--data", folder_data, "--out", "/proc/visionblocks-run", *TINY,
                    match="--out /proc/visionblocks-run: cannot make a folder in /proc")


@pytest.mark.parametrize("seeds", ["-1", "0,-2", ""])
def test_compare_seeds_below_zero_name_the_option_given(seeds, folder_data, tmp_path, capsys):
    # "--seed must be an integer >= 0" named an option the user did not give
    rc = main(["compare", "--data", folder_data, "--out", str(tmp_path / "c"), f"--seeds={seeds}", *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--seeds must be comma-separated integers >= 0" in err[0], err
    assert not (tmp_path / "c").exists()


def test_an_empty_resume_is_named(capsys):
    # `--resume ''` said "--out RUN_DIR is required", an option the user had not given
    _one_line_error(capsys, "--resume", "", match="--resume needs the run's folder (RUN_DIR), got ''")
