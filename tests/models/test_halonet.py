"""Tests of :mod:`visionblocks.models.halonet`."""
import pytest
import torch

from visionblocks.blocks.attention.halo_attention import HaloAttention
from visionblocks.layers import NormAct
from visionblocks.models.halonet import HaloBottleneck, halo_mid_layer, halonet, halonet_h0


def _meta(**kw):
    with torch.device("meta"):
        return halonet_h0(**kw)
def _blocks(m):
    return [b for b in m.modules() if isinstance(b, HaloBottleneck)]
def test_h0_structure():
    m = _meta()
    blocks = _blocks(m)
    assert len(blocks) == 3 + 3 + 7 + 3  # l3 = 7
    outs, widths, strides = [], [], []
    for b in blocks:
        assert isinstance(b.conv2, NormAct) and isinstance(b.conv2.bn, torch.nn.BatchNorm2d)
        a = b.conv2.op
        assert isinstance(a, HaloAttention)
        assert (a.block_size, a.halo_size, a.num_heads) == (8, 3, 8)
        assert a.dim_head * a.num_heads == a.channels == a.out_channels  # rv = 1: q, k, v all of the width
        assert b.conv1.conv.kernel_size == (1, 1) and b.conv1.conv.stride == (1, 1)
        outs.append(b.conv3.conv.out_channels)
        widths.append(a.channels)
        strides.append(a.stride)
    # rb = 0.5: block outputs 32 * 2**i; attention widths 64 * 2**i
    assert outs == [32] * 3 + [64] * 3 + [128] * 7 + [256] * 3
    assert widths == [64] * 3 + [128] * 3 + [256] * 7 + [512] * 3
    assert strides == [1, 1, 1, 2, 1, 1, 2] + [1] * 6 + [2, 1, 1]  # strided attention opens stages 2-4
    assert m.stem[0].conv.kernel_size == (7, 7) and m.num_features == 256
def _analytic_params(b=8, h=3, rb=0.5, l3=7, num_heads=8, num_classes=1000):
    """Parameters from the layer definitions: stem, bottlenecks (1x1, attention q/k/v + 2 relative tables,
    1x1), projection shortcuts, classifier."""
    n = 3 * 64 * 49 + 2 * 64
    c_in = 64
    for i, depth in enumerate((3, 3, l3, 3)):
        w, o = 64 * 2 ** i, int(64 * 2 ** i * rb)
        for j in range(depth):
            stride = 2 if (j == 0 and i > 0) else 1
            n += c_in * w + 2 * w                                    # conv1 + BN
            n += 3 * w * w + 2 * (2 * (b + h) - 1) * (w // num_heads)  # W_Q, W_K, W_V, r^h, r^w
            n += 2 * w                                               # BN after attention
            n += w * o + 2 * o                                       # conv3 + BN
            if stride > 1 or c_in != o:
                n += c_in * o + 2 * o                                # projection shortcut
            c_in = o
    return n + c_in * num_classes + num_classes
def test_h0_parameter_count_matches_layer_definitions():
    m = _meta()
    assert sum(p.numel() for p in m.parameters()) == _analytic_params()  # 5,495,096
def test_h0_forward_backward_and_sizes():
    torch.manual_seed(0)
    m = halonet_h0(num_classes=10, in_chans=1).train()
    x = torch.randn(2, 1, 64, 64)
    out = m(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    m.eval()
    with torch.no_grad():
        assert m(torch.randn(1, 1, 72, 40)).shape == (1, 10)  # sizes that are not multiples of the blocks
        assert m.forward_head(m.forward_features(x), pre_logits=True).shape == (2, 256)
    with pytest.raises(ValueError, match=r"\(1, 3, "):
        m(torch.randn(1, 3, 64, 64))
@pytest.mark.slow
def test_h0_compile_export():
    import torch._dynamo
    m = halonet_h0(num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)
        torch._dynamo.reset()
        assert torch.allclose(torch.compile(m, fullgraph=True, backend="eager")(x), ref, atol=1e-4, rtol=1e-4)
        assert torch.allclose(torch.export.export(m, (x,)).module()(x), ref, atol=1e-4, rtol=1e-4)
def test_halonet_validates_hyper_parameters():
    with pytest.raises(ValueError, match="rv"):
        halonet(8, 3, 0.5, 7, rv=2.0)
    with pytest.raises(ValueError, match="groups"):
        halo_mid_layer(64, 64, groups=2)
    with pytest.raises(ValueError, match="num_heads"):
        halo_mid_layer(60, 60, num_heads=8)
def test_halo_mid_layer_is_attention_norm_act():
    torch.manual_seed(0)
    unit = halo_mid_layer(16, 32, stride=2, num_heads=4, act_layer="silu").eval()
    assert list(dict(unit.named_children())) == ["op", "bn", "act"] and unit.out_channels == 32
    x = torch.randn(2, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(unit(x), torch.nn.functional.silu(unit.bn(unit.op(x))))
    assert isinstance(halo_mid_layer(16, 16, num_heads=4, act_layer=None).act, torch.nn.Identity)
