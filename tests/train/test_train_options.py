"""--amp, --channels-last and --compile take effect: what the model sees inside its forward (the autocast state and
dtype, the memory format of its input and weights) and the torch.compile wrapper actually called; a short run with
each ends with a finite loss."""
import math

import pytest
import torch
import torch.nn as nn

from visionblocks.train import TrainConfig, engine, train

CL = torch.channels_last


class Tiny(nn.Module):
    """Conv-BN-ReLU, pool, linear: small enough to compile in seconds on a CPU."""

    def __init__(self, num_classes: int, in_chans: int):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


@pytest.fixture
def tiny_model(monkeypatch):
    """train() builds a Tiny whose conv records, at every training forward: autocast on?, its dtype, the output
    dtype, input and weight in channels_last?"""
    seen = []

    def build(cfg, num_classes, in_chans, input_size):
        m = Tiny(num_classes, in_chans)

        def hook(mod, inp, out):
            if mod.training:
                seen.append({"autocast": torch.is_autocast_enabled("cpu"),
                             "autocast_dtype": torch.get_autocast_dtype("cpu"), "out_dtype": out.dtype,
                             "input_cl": inp[0].is_contiguous(memory_format=CL),
                             "weight_cl": mod.weight.is_contiguous(memory_format=CL)})
        m.conv.register_forward_hook(hook)
        return m

    monkeypatch.setattr(engine, "build_model", build)
    return seen


def _run(folder_data, tmp_path, name, **kw):
    cfg = TrainConfig(model="resnet18", data=folder_data, out=str(tmp_path / name), epochs=1, batch_size=4,
                      input_size=16, progress=False, device="cpu", **kw)
    res = train(cfg)
    row = res.history[-1]
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]), row
    return res


def test_default_run_is_float32_and_contiguous(folder_data, tmp_path, tiny_model):
    _run(folder_data, tmp_path, "plain")
    assert len(tiny_model) == 3  # 12 images, batch 4
    for s in tiny_model:  # the control: neither flag's effect without the flag (3 input channels, 3x3 weights)
        assert not s["autocast"] and s["out_dtype"] == torch.float32
        assert not s["input_cl"] and not s["weight_cl"]


def test_amp_runs_the_forward_under_bf16_autocast(folder_data, tmp_path, tiny_model):
    _run(folder_data, tmp_path, "amp", amp=True)
    assert tiny_model and all(s["autocast"] and s["autocast_dtype"] == torch.bfloat16 for s in tiny_model)
    assert all(s["out_dtype"] == torch.bfloat16 for s in tiny_model)  # the conv really ran in bf16
    assert not any(s["input_cl"] for s in tiny_model)


def test_channels_last_puts_inputs_and_weights_in_nhwc(folder_data, tmp_path, tiny_model):
    _run(folder_data, tmp_path, "cl", channels_last=True)
    assert tiny_model and all(s["input_cl"] and s["weight_cl"] for s in tiny_model)
    assert all(s["out_dtype"] == torch.float32 and not s["autocast"] for s in tiny_model)


def test_channels_last_puts_the_ema_copy_in_nhwc_too(folder_data, tmp_path, monkeypatch):
    """The EMA copy (evaluated every epoch on the same channels-last batches) gets channels-last weights too."""
    evals = []

    def build(cfg, num_classes, in_chans, input_size):
        m = Tiny(num_classes, in_chans)
        m.conv.register_forward_hook(lambda mod, inp, out: evals.append(
            (mod.training, inp[0].is_contiguous(memory_format=CL), mod.weight.is_contiguous(memory_format=CL))))
        return m

    monkeypatch.setattr(engine, "build_model", build)
    _run(folder_data, tmp_path, "ema", channels_last=True, ema=0.9)
    evaluated = [e for e in evals if not e[0]]
    assert len(evaluated) >= 2                 # the model's and the EMA copy's evaluation (the copy keeps the hook)
    assert all(inp_cl and w_cl for _, inp_cl, w_cl in evaluated), evaluated


def test_amp_and_channels_last_together(folder_data, tmp_path, tiny_model):
    _run(folder_data, tmp_path, "both", amp=True, channels_last=True)
    assert tiny_model and all(s["input_cl"] and s["weight_cl"] and s["out_dtype"] == torch.bfloat16
                              for s in tiny_model)


@pytest.mark.slow
def test_compile_trains_through_the_compiled_module(folder_data, tmp_path, tiny_model, monkeypatch):
    from torch._dynamo.utils import counters
    real_compile = torch.compile
    wrapped, calls = [], []

    def spy(model, *args, **kwargs):
        opt = real_compile(model, *args, **kwargs)
        opt.register_forward_pre_hook(lambda mod, inp: calls.append(inp[0].shape))  # runs outside dynamo
        wrapped.append((model, opt))
        return opt

    monkeypatch.setattr(torch, "compile", spy)
    torch._dynamo.reset()
    counters.clear()
    res = _run(folder_data, tmp_path, "compiled", compile=True)
    assert len(wrapped) == 1 and isinstance(wrapped[0][0], Tiny)
    assert isinstance(wrapped[0][1], torch._dynamo.eval_frame.OptimizedModule)
    assert len(calls) == 3  # every training step went through the compiled wrapper
    assert counters["stats"]["unique_graphs"] >= 1  # and dynamo captured a graph of it
    assert res.history[-1]["epoch"] == 1


def test_channels_last_takes_a_model_with_5d_kernel_banks(folder_data, tmp_path):
    """dy_resnet18's dynamic convolutions hold (K, O, I, k, k) kernel banks, which model.to(memory_format=...)
    refuses ("required rank 4 tensor"); --channels-last converts the convolution weights only."""
    cfg = TrainConfig(model="dy_resnet18", data=folder_data, out=str(tmp_path / "dy"), epochs=1, batch_size=4,
                      input_size=16, progress=False, device="cpu", channels_last=True)
    row = train(cfg).history[-1]
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]), row
