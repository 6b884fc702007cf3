"""Tests of :mod:`visionblocks.blocks.attention.cbam`."""
import torch

from _reference import assert_inference_path_equals_autograd_path
import visionblocks as vb
from visionblocks.testing import randomize_bn_stats


def test_cbam_channel_then_spatial_gate():
    m = randomize_bn_stats(vb.create_block("cbam", 32)).double().eval()
    x = torch.randn(2, 32, 9, 7, dtype=torch.float64)
    mlp = m.channel_gate.mlp
    W1, b1, W2, b2 = mlp.fc1.weight[:, :, 0, 0], mlp.fc1.bias, mlp.fc2.weight[:, :, 0, 0], mlp.fc2.bias
    f = lambda v: torch.relu(v @ W1.T + b1) @ W2.T + b2  # noqa: E731
    mc = torch.sigmoid(f(x.mean((2, 3))) + f(x.flatten(2).max(2).values))
    x1 = x * mc[:, :, None, None]
    s = torch.stack([x1.mean(1), x1.max(1).values], 1)  # (B, 2, H, W): [avg; max]
    w = m.spatial_gate.conv.weight[0]  # (2, 7, 7)
    sp = torch.nn.functional.pad(s, (3, 3, 3, 3))
    conv = torch.zeros(2, 9, 7, dtype=torch.float64)
    for i in range(9):
        for j in range(7):
            conv[:, i, j] = (sp[:, :, i:i + 7, j:j + 7] * w).sum((1, 2, 3))
    bn = m.spatial_gate.bn
    ms = torch.sigmoid((conv - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias)
    torch.testing.assert_close(m(x), x1 * ms[:, None], rtol=1e-10, atol=1e-10)


def test_cbam_inference_path_equals_autograd_path():
    assert_inference_path_equals_autograd_path("cbam", 32, input_shape=(2, 32, 9, 7))


def test_onnx_export_with_a_dynamic_batch():
    """torch.onnx.export with a dynamic batch (what a deployment wants): the exported CBAM runs at other batches
    and gives eager's output (the channel gate's halves split by chunk made the ONNX optimiser fail, so every
    CBAM network failed to export with a dynamic batch)."""
    import pytest
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import warnings
    from torch.export import Dim
    torch.manual_seed(0)
    m = randomize_bn_stats(vb.create_block("cbam", 16)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(m, (torch.randn(2, 16, 8, 8),), dynamo=True, dynamic_shapes=({0: Dim.AUTO},),
                                    verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, 16, 8, 8)
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), m(x), rtol=1e-4, atol=1e-5)
