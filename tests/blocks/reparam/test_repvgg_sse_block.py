"""Tests of :mod:`visionblocks.blocks.reparam.repvgg_sse_block`."""
import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.blocks.reparam.repvgg_sse_block import PooledConvBN, RepConv3x3

from _reference import _build, _prep, bn_eval as _bn


def test_parnet_attention_matches_equations():
    m = _build("repvgg_sse_block", 8)
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    b3 = _bn(F.conv2d(x, m.conv.body.conv3x3.conv.weight, padding=1), m.conv.body.conv3x3.bn)
    b1 = _bn(F.conv2d(x, m.conv.body.conv1x1.conv.weight), m.conv.body.conv1x1.bn)
    s = _bn(x, m.skip_bn)
    gate = torch.sigmoid(torch.einsum("oc,bc->bo", m.sse_fc.weight[:, :, 0, 0], s.mean((2, 3))))
    ref = b3 + b1 + s * gate[:, :, None, None]
    ref = ref * torch.sigmoid(ref)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-12)
def test_parnet_attention_reparameterize_keeps_output():
    m = _build("repvgg_sse_block", 8)
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    ref = m(x)
    vb.reparameterize(m)
    assert m.is_reparameterized and not hasattr(m.conv.body, "conv1x1")
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    fresh = vb.create_block("parnet_attention", 8, deploy=True).double().eval()  # the former name resolves too
    fresh.load_state_dict(m.state_dict())
    torch.testing.assert_close(fresh(x), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride,groups,size", [(1, 1, (6, 7)), (2, 1, (7, 9)), (2, 2, (8, 8))])
def test_repconv_folds_exactly(stride, groups, size):
    m = _prep(RepConv3x3(6, 8, stride, groups))
    x = torch.randn(2, 6, *size, dtype=torch.float64)
    ref = m(x)
    m.reparameterize()
    m.reparameterize()  # idempotent
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(RuntimeError):
        RepConv3x3(6, 8, stride, groups).train().reparameterize()
@pytest.mark.parametrize("k", [3, 5])
def test_pooled_branch_kernel_is_the_corner_of_a_strided_window(k):
    """BN(conv1x1(avgpool2x2 x)) == a stride-2, padding-k//2 kxk conv with BN-scaled w/4 on the 2x2 block at
    offset (k//2, k//2), at even and odd sizes."""
    m = _prep(PooledConvBN(4, 6, groups=2))
    w, b = m.kernel_bias(k)
    scale = m.bn.weight / (m.bn.running_var + m.bn.eps).sqrt()
    corner = torch.zeros_like(w)
    corner[:, :, k // 2:k // 2 + 2, k // 2:k // 2 + 2] = scale[:, None, None, None] * m.conv.weight / 4
    torch.testing.assert_close(w, corner, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(b, m.bn.bias - m.bn.running_mean * scale, rtol=1e-12, atol=1e-14)
    for H, W in [(7, 9), (8, 8)]:
        x = torch.randn(2, 4, H, W, dtype=torch.float64)
        xp = torch.zeros(2, 4, H + H % 2, W + W % 2, dtype=torch.float64)   # zero-padded to even size
        xp[:, :, :H, :W] = x
        pooled = (xp[:, :, 0::2, 0::2] + xp[:, :, 1::2, 0::2] + xp[:, :, 0::2, 1::2] + xp[:, :, 1::2, 1::2]) / 4
        ref = _bn(F.conv2d(pooled, m.conv.weight, groups=2), m.bn)
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(F.conv2d(x, w, b, stride=2, padding=k // 2, groups=2), ref, rtol=1e-10, atol=1e-12)


def test_stride2_branches_export_to_onnx_with_a_dynamic_size():
    """ParNet's stride-2 RepConvs (with their pooled 1x1 branch) exported to ONNX with dynamic batch, H and W run
    in onnxruntime at odd sizes other than the example's and give eager's output (the pooling branched on the
    parity of H and W, and the exporter's torch.export step failed on that guard: the training-form ParNets did
    not export with a dynamic size)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import warnings
    from torch.export import Dim
    torch.manual_seed(0)
    m = torch.nn.Sequential(RepConv3x3(3, 8, stride=2), RepConv3x3(8, 8, stride=2), RepConv3x3(8, 8, stride=2)).eval()
    for bn in m.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(m, (torch.randn(2, 3, 32, 32),), dynamo=True, verbose=False,
                                    dynamic_shapes=({0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO},))
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in ((1, 3, 37, 45), (3, 3, 48, 30)):
        x = torch.randn(*shape)
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        with torch.no_grad():
            torch.testing.assert_close(got, m(x), rtol=1e-4, atol=1e-5)
