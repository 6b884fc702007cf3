"""Tests of :mod:`visionblocks.layers.shuffle`."""
import pytest
import torch

from visionblocks.layers import channel_shuffle, is_channels_last


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("groups", [2, 3])
def test_channel_shuffle_by_index_in_both_layouts(groups, channels_last):
    """out channel j * g + i is input channel i * n + j (g groups of n); a channels-last map stays channels-last
    (ATen's kernel), with the same values and gradient."""
    x = torch.randn(2, 12, 5, 6, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = channel_shuffle(x, groups)
    n = 12 // groups
    ref = torch.stack([x[:, i * n + j] for j in range(n) for i in range(groups)], dim=1)
    assert torch.equal(out, ref)
    assert is_channels_last(out) == channels_last
    g = torch.randn_like(ref)
    assert torch.equal(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0])


def test_channel_shuffle_of_a_channels_last_map_exports_through_torchscript():
    # ATen's channel_shuffle has no TorchScript ONNX translation: vb.fuse'd (channels-last) ParNet and SA-ResNet-50
    # were refused by torch.onnx.export(dynamo=False), what ultralytics' ONNX export calls
    ort = pytest.importorskip("onnxruntime")
    import io
    import warnings

    class Shuffle(torch.nn.Module):
        def forward(self, x):
            return channel_shuffle(x, 3)

    x = torch.randn(2, 12, 5, 6).contiguous(memory_format=torch.channels_last)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Shuffle(), (x,), f, dynamo=False, opset_version=17, input_names=["x"],
                          dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}})
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    other = torch.randn(3, 12, 7, 4)
    assert torch.equal(torch.from_numpy(sess.run(None, {"x": other.numpy()})[0]), channel_shuffle(other, 3))
