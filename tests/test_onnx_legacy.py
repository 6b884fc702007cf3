"""Every block through the TorchScript ONNX exporter (``torch.onnx.export(dynamo=False)``, what ultralytics'
``model.export(format="onnx")`` calls) with dynamic axes: the graph run in onnxruntime at the example and at two
other batches and sizes gives the eager result.  A trace records sizes that Python arithmetic touches as
constants, so a block that divides by ``H * W`` or chooses a code path by its size is right at the example and
wrong elsewhere: the silent failure this test exists for.  Blocks the TorchScript exporter cannot export at all
are listed with the reason; the list is strict (a listed block that exports must leave it)."""
from __future__ import annotations

import contextlib
import io
import os
import warnings

import pytest
import torch

import visionblocks as vb
from visionblocks import testing as T

ort = pytest.importorskip("onnxruntime")

# exported loudly refused (an exception at export, or onnxruntime refusing the graph); never a wrong answer
KNOWN: dict[str, str] = {
    "cond_conv": "per-sample kernels: the exporter refuses a convolution whose kernel shape it cannot infer",
    "dynamic_conv": "per-sample kernels: the exporter refuses a convolution whose kernel shape it cannot infer",
    "emsa": "the exporter refuses instance_norm over a channel count it cannot infer (EMSA's heads x heads maps)",
    "global_filter": "the TorchScript exporter has no FFT (aten::fft_rfft2); the dynamo exporter does",
    "halo_attention": "the exporter has no sliding-window unfold of an input of dynamic size",
    "outlook_attention": "col2im (the windows summed back) needs opset 18 (this test exports opset 17)",
}

# single-input blocks: the exporter's dynamic_axes name one input
BLOCKS = [n for n in vb.list_blocks() if len(T.make_inputs(vb.block_info(n))) == 1]


def _export(m, inputs, dynamic):
    f = io.BytesIO()
    with warnings.catch_warnings(), open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), \
            contextlib.redirect_stderr(devnull):
        warnings.simplefilter("ignore")
        torch.onnx.export(m, inputs, f, dynamo=False, opset_version=17, input_names=["x"],
                          dynamic_axes={"x": dynamic})
    return ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])


# and on channels-last maps with channels-last convolution weights, what vb.fuse hands every block of a CPU network
# (channel_shuffle took ATen's kernel there, which this exporter does not know: fused ParNet/SA-ResNet were refused)
CASES = [(n, "nchw") for n in BLOCKS] + [(n, "channels_last") for n in BLOCKS
                                        if T.make_inputs(vb.block_info(n))[0].ndim == 4]


def _channels_last(case):
    return tuple(t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t for t in case)


@pytest.mark.slow
@pytest.mark.parametrize("name,layout", CASES)
def test_torchscript_onnx_export_with_dynamic_axes(name, layout):
    info = vb.block_info(name)
    m = T.build(info).eval()
    if info.dynamic_export_unsupported:
        inputs, others = T.make_inputs(info), []
    else:
        inputs, others = T._dynamic_cases(info)
    if layout == "channels_last":
        m = vb.to_channels_last(m)
        inputs, others = _channels_last(inputs), [_channels_last(o) for o in others]
    dims = sorted({d for o in others for d in range(inputs[0].ndim) if o[0].shape[d] != inputs[0].shape[d]})
    try:
        sess = _export(m, inputs, {d: f"d{d}" for d in dims})
        results = [(case, torch.from_numpy(sess.run(None, {"x": case[0].numpy()})[0])) for case in [inputs, *others]]
    except Exception as e:
        if name in KNOWN:
            return
        raise AssertionError(f"{name}: TorchScript ONNX export with dynamic axes {dims} failed: "
                             f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}") from e
    for case, got in results:
        with torch.no_grad():
            ref = T._run(m, case)[0]
        assert got.shape == ref.shape, f"{name}: at {T.shapes_of(case)} ONNX gives {tuple(got.shape)}, eager " \
                                       f"{tuple(ref.shape)}"
        err = (got.double() - ref.double()).abs().max().item()
        assert err <= 1e-4 * max(1.0, ref.abs().max().item()), \
            f"{name}: at {T.shapes_of(case)} the ONNX graph differs from eager by {err:.3g} (a size traced as a constant?)"
    assert name not in KNOWN, f"{name} exports and runs: remove it from KNOWN"
