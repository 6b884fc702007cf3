"""Resuming: an interrupted run (after an epoch, mid-epoch, by SIGTERM) resumed ends bitwise equal to the uninterrupted
one on one CPU process; logs, curves and checkpoints are written."""
import json
import os
import signal

import pytest
import torch

from visionblocks.train import TrainConfig, config_for_resume, train

OPTS = dict(model="resnet18", epochs=2, batch_size=4, input_size=16, ema=0.9, model_kwargs={"drop_rate": 0.2},
            progress=False, warmup_epochs=0.5)


def _state(run_dir):
    ck = torch.load(os.path.join(run_dir, "last.pt"), weights_only=True)
    return ck


def _assert_bitwise(a, b):
    for part in ("model", "model_ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part} {k} differs"
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    for i in sa:
        for k in sa[i]:
            assert torch.equal(sa[i][k], sb[i][k])
    assert a["history"][-1]["val_top1"] == b["history"][-1]["val_top1"]
    assert a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]


@pytest.fixture
def reference(folder_data, tmp_path):
    res = train(TrainConfig(data=folder_data, out=str(tmp_path / "full"), **OPTS))
    assert not res.interrupted and res.epochs_done == 2
    return _state(res.run_dir)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_after_an_epoch_is_bitwise_equal(folder_data, tmp_path, reference, workers):
    out = str(tmp_path / "part")
    res = train(TrainConfig(data=folder_data, out=out, stop_after_epoch=1, workers=workers, **OPTS))
    assert res.interrupted and res.epochs_done == 1
    assert _state(out)["epoch"] == 1
    cfg = config_for_resume(out, {"stop_after_epoch": None, "workers": workers})
    res = train(cfg, resume=True)
    assert not res.interrupted and res.epochs_done == 2
    _assert_bitwise(_state(out), reference)
    for f in ("log.csv", "log.json", "config.json", "curves.png"):
        assert os.path.exists(os.path.join(out, f))
    log = json.load(open(os.path.join(out, "log.json")))
    assert [r["epoch"] for r in log] == [1, 2]


def test_resume_mid_epoch_after_sigterm_is_bitwise_equal(folder_data, tmp_path, reference):
    out = str(tmp_path / "sig")

    def kill_at_second_step(epoch, step):  # a SIGTERM arrives during epoch 2 (0-based 1), step 2 of 3
        if (epoch, step) == (1, 2):
            os.kill(os.getpid(), signal.SIGTERM)
        return False

    res = train(TrainConfig(data=folder_data, out=out, **OPTS), on_step=kill_at_second_step)
    assert res.interrupted
    ck = _state(out)
    assert (ck["epoch"], ck["step_in_epoch"], ck["global_step"]) == (1, 2, 5)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
    res = train(config_for_resume(out), resume=True)
    assert res.epochs_done == 2
    _assert_bitwise(_state(out), reference)


def test_resume_with_a_longer_schedule_continues(folder_data, tmp_path):
    out = str(tmp_path / "ext")
    train(TrainConfig(data=folder_data, out=out, **{**OPTS, "epochs": 1, "ema": None}))
    res = train(config_for_resume(out, {"epochs": 2}), resume=True)
    assert [r["epoch"] for r in res.history] == [1, 2]


def test_stop_after_epoch_belongs_to_one_invocation(folder_data, tmp_path, capsys):
    """--stop-after-epoch is not carried over by --resume (the printed continue command finishes the run); a resume
    may give it again, for a later epoch than the ones done."""
    from visionblocks.train.cli import main
    out = str(tmp_path / "sae")
    res = train(TrainConfig(data=folder_data, out=out, stop_after_epoch=1, **{**OPTS, "epochs": 3, "ema": None}))
    assert res.interrupted and res.epochs_done == 1
    ck = open(os.path.join(out, "last.pt"), "rb").read()
    assert main(["train", "--resume", out, "--stop-after-epoch", "1", "--quiet"]) == 2  # already done
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stop-after-epoch 1" in err[0] and "already done 1 epoch" in err[0], err
    assert open(os.path.join(out, "last.pt"), "rb").read() == ck
    assert main(["train", "--resume", out, "--stop-after-epoch", "2", "--quiet"]) == 130
    assert _state(out)["epoch"] == 2
    capsys.readouterr()
    assert main(["train", "--resume", out, "--quiet"]) == 0  # to --epochs, not stopped again
    assert _state(out)["epoch"] == 3
    assert config_for_resume(out).stop_after_epoch is None


def test_python_resume_refuses_another_recipe(folder_data, tmp_path):
    """train(cfg, resume=True) checks cfg against the run as --resume does: another recipe is refused (every
    differing option named, nothing written); the options a resume may change are taken."""
    from visionblocks.train import TrainError
    out = str(tmp_path / "api")
    opts = {**OPTS, "epochs": 1, "ema": None}
    train(TrainConfig(data=folder_data, out=out, **opts))
    before = {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))}
    with pytest.raises(TrainError, match=r"another run") as e:
        train(TrainConfig(data=folder_data, out=out, **{**opts, "epochs": 2}, lr=0.5, label_smoothing=0.0),
              resume=True)
    assert "--lr" in str(e.value) and "--label-smoothing" in str(e.value) and len(str(e.value).splitlines()) == 1
    assert {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))} == before
    res = train(TrainConfig(data=folder_data, out=out, **{**opts, "epochs": 2, "workers": 0}), resume=True)
    assert [r["epoch"] for r in res.history] == [1, 2]
    saved = json.load(open(os.path.join(out, "config.json")))
    assert saved["lr"] == 1e-3 and saved["label_smoothing"] == 0.1 and saved["epochs"] == 2


def test_a_run_records_its_data_by_absolute_path(tmp_path, monkeypatch):
    """--data was stored as typed: a run started with a relative path and resumed from another working directory
    failed (no such data) or, where a folder of that name with the same classes stood, trained on that other data
    silently; and the absolute path of the same folder was refused as "another run"."""
    from conftest import make_folder
    from visionblocks.train import TrainError
    make_folder(tmp_path / "a" / "data")
    monkeypatch.chdir(tmp_path / "a")
    opts = {**OPTS, "epochs": 2, "ema": None}
    res = train(TrainConfig(data="data", out=str(tmp_path / "run"), stop_after_epoch=1, **opts))
    assert res.interrupted
    original = str(tmp_path / "a" / "data")
    saved = json.load(open(tmp_path / "run" / "config.json"))
    assert saved["data"] == original and saved["data_info"]["source"] == original
    make_folder(tmp_path / "b" / "data", per_class=(8, 3))  # same relative name and classes, other images
    monkeypatch.chdir(tmp_path / "b")
    cfg = config_for_resume(str(tmp_path / "run"), {"data": original})  # the same folder, spelt absolutely
    assert cfg.data == original
    with pytest.raises(TrainError, match="another run"):
        config_for_resume(str(tmp_path / "run"), {"data": "data"})  # here, ./data is the other folder
    res = train(config_for_resume(str(tmp_path / "run")), resume=True)
    assert res.epochs_done == 2 and res.data.num_train == 12  # a's 2 x 6 training images, not b's 2 x 8
    assert json.load(open(tmp_path / "run" / "config.json"))["data_info"]["source"] == original


def test_resume_with_fewer_epochs_than_done_is_refused(folder_data, tmp_path, capsys):
    """Resuming a run with --epochs below the epochs it has done rewrote config.json (epochs 1) while last.pt held
    2 epochs, and printed that the schedule was "stretched"."""
    from visionblocks.train.cli import main
    out = str(tmp_path / "few")
    train(TrainConfig(data=folder_data, out=out, **{**OPTS, "ema": None}))
    before = {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))}
    assert main(["train", "--resume", out, "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--epochs 1" in err[0] and "already done 2 epoch(s)" in err[0], err
    assert {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))} == before
    assert main(["train", "--resume", out, "--epochs", "2", "--quiet"]) == 0  # finished: the same number is fine
