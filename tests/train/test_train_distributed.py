"""torchrun --nproc_per_node=2 on the CPU (gloo): one step equals one process on the same global batch; a resumed
distributed run continues to the weights of the uninterrupted one."""
import os
import subprocess
import sys

import pytest
import torch

from visionblocks import create_model
from visionblocks.train import TrainConfig, train

# ResMLP has no batch norm (per-rank statistics would differ without SyncBatchNorm, which needs GPUs), and SGD's
# update is linear in the gradient (Adam's first step is its sign: float noise near 0 would flip it)
MODEL = ["--model", "resmlp_12", "--model-kwargs", '{"img_size": 16}', "--input-size", "16", "--opt", "sgd",
         "--lr", "0.1", "--label-smoothing", "0.1", "--quiet"]


def _torchrun(args, out, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "visionblocks.train", "train", *MODEL, *args, "--out", out, "--device", "cpu"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return p


def _weights(run_dir):
    return torch.load(os.path.join(run_dir, "last.pt"), weights_only=True)["model"]


def _one_process(folder_data, out, **kw):
    cfg = TrainConfig(data=folder_data, out=out, model="resmlp_12", model_kwargs={"img_size": 16}, input_size=16,
                      opt="sgd", lr=0.1, progress=False, device="cpu", **kw)
    return train(cfg)


def test_two_processes_equal_one_process_after_a_step(folder_data, tmp_path):
    # 8 training images, global batch 8: one step (4 images on each rank)
    out = str(tmp_path / "ddp")
    p = _torchrun(["--data", folder_data, "--epochs", "1", "--batch-size", "8", "--limit", "8"], out)
    assert p.returncode == 0, p.stderr[-3000:]
    ref = _one_process(folder_data, str(tmp_path / "one"), epochs=1, batch_size=8, limit=8)
    assert ref.history[0]["epoch"] == 1
    a, b = _weights(out), _weights(ref.run_dir)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)  # the run's initialisation: the step did change the weights
    init = create_model("resmlp_12", num_classes=2, in_chans=3, img_size=16).state_dict()
    assert max((init[k] - a[k]).abs().max().item() for k in a) > 1e-4
    ck = torch.load(os.path.join(out, "last.pt"), weights_only=True)
    assert ck["global_step"] == 1 and ck["history"][0]["val_top1"] == ref.history[0]["val_top1"]


@pytest.mark.slow
def test_resumed_distributed_run_continues(folder_data, tmp_path):
    common = ["--data", folder_data, "--epochs", "2", "--batch-size", "4"]
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    p = _torchrun(common, full)
    assert p.returncode == 0, p.stderr[-3000:]
    p = _torchrun([*common, "--stop-after-epoch", "1"], part)
    # every worker exits 130; torchrun passes that on only when it sees all of them end together, and otherwise
    # stops the slower one and reports 1 (the checkpoint is complete either way: each rank saves before the
    # all-reduce that tells it to stop)
    assert p.returncode in (1, 130), p.stderr[-3000:]
    assert "exitcode  : 130" in p.stderr or p.returncode == 130, p.stderr[-3000:]
    assert torch.load(os.path.join(part, "last.pt"), weights_only=True)["epoch"] == 1
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                        "visionblocks.train", "train", "--resume", part, "--quiet"], env=env, capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    a, b = _weights(part), _weights(full)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
