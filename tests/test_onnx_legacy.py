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
    "global_filter": "the TorchScript exporter has no FFT (aten::fft_rfft2); the dynamo exporter does",
    "halo_attention": "the exporter has no sliding-window unfold of an input of dynamic size",
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


def _run_exported(name, known, m, inputs, cases, dynamic, grad):
    """onnxruntime's output for each of ``cases`` (tuples of inputs) of ``m`` exported at ``inputs`` with the
    ``dynamic`` axes (autograd on or off: ``grad``); None where the export or run fails and ``name`` is in
    ``known`` (a listed refusal), an AssertionError naming it where it is not."""
    try:
        with torch.set_grad_enabled(grad):
            sess = _export(m, inputs, dynamic)
        return [torch.from_numpy(sess.run(None, {"x": case[0].numpy()})[0]) for case in cases]
    except Exception as e:
        if name in known:
            return None
        raise AssertionError(f"{name}: TorchScript ONNX export with dynamic axes {sorted(dynamic)} failed: "
                             f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}") from e


# and on channels-last maps with channels-last convolution weights, what vb.fuse hands every block of a CPU network
# (channel_shuffle took ATen's kernel there, which this exporter does not know: fused ParNet/SA-ResNet were refused)
CASES = [(n, "nchw") for n in BLOCKS] + [(n, "channels_last") for n in BLOCKS
                                        if T.make_inputs(vb.block_info(n))[0].ndim == 4]


def _channels_last(case):
    return tuple(t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t for t in case)


@pytest.mark.slow
@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])
@pytest.mark.parametrize("name,layout", CASES)
def test_torchscript_onnx_export_with_dynamic_axes(name, layout, grad):
    # no_grad: as ultralytics exports (the blocks' inference paths: danet's and EMSA's softmax(out=) were refused)
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
    cases = [inputs, *others]
    outs = _run_exported(name, KNOWN, m, inputs, cases, {d: f"d{d}" for d in dims}, grad)
    if outs is None:
        return
    for case, got in zip(cases, outs):
        with torch.no_grad():
            ref = T._run(m, case)[0]
        assert got.shape == ref.shape, f"{name}: at {T.shapes_of(case)} ONNX gives {tuple(got.shape)}, eager " \
                                       f"{tuple(ref.shape)}"
        err = (got.double() - ref.double()).abs().max().item()
        assert err <= 1e-4 * max(1.0, ref.abs().max().item()), \
            f"{name}: at {T.shapes_of(case)} the ONNX graph differs from eager by {err:.3g} (a size traced as a constant?)"
    assert name not in KNOWN, f"{name} exports and runs: remove it from KNOWN"


def test_self_calibrated_pool_traced_at_small_and_odd_maps():
    # SCConv pools its calibration branch with AvgPool(r, r), and in ceil mode where the map is smaller than r; that
    # choice was a Python test of the size, which a trace keeps: SCNet-50 exported at 32x32 pooled its 5x5 maps in
    # ceil mode at 65x71 (0.16 off in onnxruntime, silently)
    m = vb.create_block("self_calibrated_conv", 16, 16, 3, pooling_r=4).eval()
    sess = _export(m, (torch.randn(2, 16, 16, 16),), {0: "b", 2: "h", 3: "w"})
    for h, w in [(16, 16), (5, 5), (3, 9), (9, 3), (2, 2), (17, 23), (4, 7)]:
        x = torch.randn(1, 16, h, w)
        with torch.no_grad():
            ref = m(x)
        got = torch.from_numpy(sess.run(None, {"x": x.numpy()})[0])
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5, msg=f"at {h}x{w}")


# Models: the TorchScript exporter records the sizes Python arithmetic or a Python test touches as constants, so a
# network composes what each block does alone with what it does between them (ResT's stage reshape fixed the batch
# of every later stage: 'Reshape' refused batch 3 in onnxruntime).  Unfused, and fused as deployed.
KNOWN_MODELS: dict[str, str] = {
    **{n: "per-sample kernels (dynamic convolution): a convolution whose kernel shape the exporter cannot infer"
       for n in ("condconv_efficientnet_b0_8e", "dy_resnet18")},
    **{n: "the TorchScript exporter has no FFT (aten::fft_rfft2); the dynamo exporter does"
       for n in vb.list_models("gfnet*")},
}


# relative tolerance where the eager float32 output is itself that far from float64: ResT's EMSA normalises (N x N')
# attention maps of a few values per instance, which amplifies rounding (1.2e-4..2.7e-4 measured here)
TOLERANCE = {n: 1e-3 for n in vb.list_models("rest_*")}


@pytest.mark.slow
@pytest.mark.parametrize("fused", [False, True], ids=["eval", "fused"])
@pytest.mark.parametrize("name", vb.list_models())
def test_torchscript_onnx_export_of_models_with_dynamic_axes(name, fused):
    info = vb.model_info(name)
    m = T._build_model(info, num_classes=10).eval()
    if fused:
        vb.fuse(m)
    h, w = T.model_test_size(info)
    if info.test_input_size is None:  # a fixed size: only the batch varies
        x, others, dynamic = T._model_input(info, batch=2), [T._model_input(info, batch=3)], {0: "b"}
    else:
        x, dynamic = T._model_input(info, batch=2, size=(h, w)), {0: "b", 2: "h", 3: "w"}
        others = [T._model_input(info, batch=3, size=(h, w)), T._model_input(info, batch=1, size=(h + 33, w + 39))]
    cases = [x, *others]
    # (without autograd, as ultralytics exports: the inference paths)
    outs = _run_exported(name, KNOWN_MODELS, m, (x,), [(c,) for c in cases], dynamic, grad=False)
    if outs is None:
        return
    for case, got in zip(cases, outs):
        with torch.no_grad():
            ref = m(case)
        err = (got.double() - ref.double()).abs().max().item()
        assert err <= TOLERANCE.get(name, 1e-4) * max(1.0, ref.abs().max().item()), \
            f"{name}: at {tuple(case.shape)} the ONNX graph differs from eager by {err:.3g}"
    assert name not in KNOWN_MODELS, f"{name} exports and runs: remove it from KNOWN_MODELS"
