"""visionblocks.fuse: the inference form of every registered model gives the same eval outputs (float64,
BatchNorm statistics and affine parameters away from their initial values) with fewer BatchNorms."""
import copy

import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks import testing as T


def _bn_count(m):
    return sum(isinstance(x, nn.BatchNorm2d) for x in m.modules())


# the families issue 18 names (ResNet family, MobileNetV2, EfficientNet-B0), re-parameterized networks, a unit
# whose BN follows the addition (CoResNet), and networks with BN after the activation (nothing to fold there)
FUSED = ["resnet18", "resnet50", "resnext50_32x4d", "se_resnet50", "coconv_resnet50", "mobilenetv2",
         "efficientnet_b0", "repvgg_a0", "acnet_resnet18", "dbb_resnet18", "ghostnet_100", "mobilevit_xxs",
         "convmixer_768_32"]
FOLDS = {"resnet18", "resnet50", "resnext50_32x4d", "se_resnet50", "coconv_resnet50", "mobilenetv2",
         "efficientnet_b0", "ghostnet_100", "mobilevit_xxs"}


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", FUSED)
def test_fuse_keeps_outputs(name, channels_last):
    info = vb.model_info(name)
    torch.manual_seed(0)
    m = vb.create_model(name, num_classes=5).double().eval()
    T.randomize_bn_stats(m, seed=1)
    x = torch.randn(2, 3, *T.model_test_size(info), dtype=torch.float64)
    with torch.no_grad():
        ref = m(x)
        before = _bn_count(m)
        vb.fuse(m, channels_last=channels_last)
        got = m(x)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9 * ref.abs().max().item())
    if name in FOLDS:
        assert _bn_count(m) < before, f"{name}: no BatchNorm was folded"
    else:
        assert _bn_count(m) <= before


def test_fuse_refuses_training_mode_and_non_modules():
    m = vb.create_model("resnet18")
    with pytest.raises(RuntimeError, match="eval"):
        vb.fuse(m)
    assert _bn_count(m) == 20  # untouched
    with pytest.raises(TypeError, match="nn.Module"):
        vb.fuse("resnet18")


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_fuse_with_one_part_in_training_mode_folds_nothing():
    # a block (or one BatchNorm) left in training mode: refused, naming it, before anything is folded (it folded 21
    # of RepVGG-A0's 22 blocks and then raised; a training-mode BatchNorm was folded with its running statistics,
    # changing the output)
    x = torch.randn(2, 3, 32, 32)
    m = vb.create_model("repvgg_a0", num_classes=5).eval()
    blocks = [b for b in m.modules() if type(b).__name__ == "RepVGGBlock"]
    blocks[-1].train()
    before = _state(m)
    for fold in (vb.fuse, vb.reparameterize):
        with pytest.raises(RuntimeError, match=r"RepVGGBlock\) is in training mode.*nothing was folded"):
            fold(m)
        after = _state(m)
        assert list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items())
    m = vb.create_model("resnet18", num_classes=5).eval()
    m.stages[3][1].conv2.bn.train()
    before, ref = _state(m), m(x)
    with pytest.raises(RuntimeError, match=r"fuse: stages.3.1.conv2.bn \(BatchNorm2d\) is in training mode"):
        vb.fuse(m)
    after = _state(m)
    assert list(after) == list(before) and torch.equal(m(x), ref)


def test_fuse_folds_plain_sequential_pairs_and_leaves_others():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU(),
                        nn.BatchNorm2d(4)).eval()
    T.randomize_bn_stats(net, seed=3)
    x = torch.randn(1, 3, 8, 8)
    ref = net(x)
    vb.fuse(net)
    assert isinstance(net[1], nn.Identity) and isinstance(net[5], nn.BatchNorm2d)  # BN after ReLU stays
    torch.testing.assert_close(net(x), ref, rtol=1e-5, atol=1e-6)



class _BNReLU(nn.BatchNorm2d):  # a BatchNorm that does more (what timm's BatchNormAct2d is)
    def forward(self, x):
        return torch.relu(super().forward(x))


class _NamedBN(nn.BatchNorm2d):  # a subclass that only renames: it normalises, nothing more
    pass


@pytest.mark.parametrize("where", ["sequential", "conv_norm_act"])
def test_fuse_folds_only_batch_norms_that_only_normalise(where):
    # a BatchNorm subclass with its own forward was folded as a plain one: its ReLU vanished (0.74 off in 1.0)
    from visionblocks.layers import ConvNormAct
    if where == "sequential":
        net = nn.Sequential(nn.Conv2d(3, 8, 3), _BNReLU(8), nn.Conv2d(8, 8, 1), _NamedBN(8)).eval()
        kept, folded = (lambda n: n[1]), (lambda n: n[3])
    else:
        net = nn.Sequential(ConvNormAct(3, 8, 3, norm_layer=_BNReLU, act_layer=None),
                            ConvNormAct(8, 8, 1, norm_layer=_NamedBN, act_layer=None)).eval()
        kept, folded = (lambda n: n[0].bn), (lambda n: n[1].bn)
    T.randomize_bn_stats(net, seed=4)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        ref = net(x)
        vb.fuse(net)
        assert type(kept(net)) is _BNReLU and isinstance(folded(net), nn.Identity)
        torch.testing.assert_close(net(x), ref, rtol=1e-5, atol=1e-5)

# --- channels-last weights (fuse's default on the CPU) ------------------------------------------------------
CL = torch.channels_last


def _spatial_conv_weights(m):
    """Weights of the k x k (k > 1) convolutions: the ones whose NCHW and channels-last layouts differ."""
    return [c.weight for c in m.modules() if isinstance(c, nn.Conv2d) and c.weight.shape[-2:].numel() > 1]


def test_fuse_stores_conv_weights_channels_last_on_cpu_by_default():
    m = vb.create_model("resnet18").eval()
    vb.fuse(m)
    ws = _spatial_conv_weights(m)
    assert len(ws) == 17 and all(w.is_contiguous(memory_format=CL) and not w.is_contiguous() for w in ws)
    x = torch.randn(2, 3, 32, 32)  # an NCHW input is accepted; the maps come out channels-last
    assert m.forward_features(x).is_contiguous(memory_format=CL)


def test_fuse_channels_last_false_keeps_nchw_weights_and_bad_values_are_refused():
    m = vb.create_model("resnet18").eval()
    vb.fuse(m, channels_last=False)
    assert all(w.is_contiguous() for w in _spatial_conv_weights(m))
    m2 = vb.create_model("resnet18").eval()
    with pytest.raises(TypeError, match="channels_last must be True, False or None.*str"):
        vb.fuse(m2, channels_last="yes")
    assert _bn_count(m2) == 20  # refused before anything was folded


def test_fuse_default_keeps_nchw_for_a_network_whose_blocks_prefer_it():
    def build():
        m = vb.create_model("resnet18").eval()
        list(m.children())[-2].prefers_nchw = True   # a block measured slower on channels-last maps says so
        return m
    m = vb.fuse(build())
    assert _bn_count(m) == 0 and all(w.is_contiguous() for w in _spatial_conv_weights(m))
    m = vb.fuse(build(), channels_last=True)  # asked for: done
    assert all(w.is_contiguous(memory_format=CL) and not w.is_contiguous() for w in _spatial_conv_weights(m))


def test_fuse_default_puts_resnest_in_channels_last():
    """ResNeSt's split attention has a channels-last path (it was 1.26x slower on channels-last maps before, and
    declared prefers_nchw): fuse's default now stores its network's weights channels-last, outputs unchanged."""
    torch.manual_seed(0)
    m = vb.create_model("resnest50").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = m.double()(x.double())
        m = vb.fuse(m.float())
        out = m(x)
    assert not any(getattr(mod, "prefers_nchw", False) for mod in m.modules())
    assert all(w.is_contiguous(memory_format=CL) and not w.is_contiguous() for w in _spatial_conv_weights(m))
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


@pytest.mark.parametrize("where", ["meta", "float64"])
def test_fuse_default_leaves_weights_alone_off_the_cpu_or_in_float64(where):
    m = vb.create_model("resnet18").eval()
    m = m.to("meta") if where == "meta" else m.double()
    vb.fuse(m)
    assert _bn_count(m) == 0  # folded, but not made channels-last: the default is for oneDNN's types on the CPU
    assert all(w.is_contiguous() for w in _spatial_conv_weights(m))
    m = vb.fuse(vb.create_model("resnet18").eval().to("meta" if where == "meta" else torch.float64),
                channels_last=True)  # asked for: done anywhere
    assert all(w.is_contiguous(memory_format=CL) and not w.is_contiguous() for w in _spatial_conv_weights(m))


@pytest.mark.parametrize("name", vb.list_models())
def test_channels_last_weights_keep_eval_outputs(name):
    """Every model computes the same function with its convolution weights channels-last (fuse's CPU default):
    no view, reshape or kernel in any block depends on the layout of the maps that then flow through it.  In
    float32 (float64 channels-last depthwise convolutions take a slow generic kernel: minutes per model), held to
    the float64 NCHW reference: the channels-last result may not be further from it than a few times float32's own
    rounding error in NCHW (a layout bug mixes channels or positions: an error of the size of the output)."""
    info = vb.model_info(name)
    torch.manual_seed(0)
    m = vb.create_model(name, num_classes=5).eval()
    x = torch.randn(2, 3, *T.model_test_size(info))
    with torch.no_grad():
        ref = copy.deepcopy(m).double()(x.double())
        nchw = m(x)
        vb.to_channels_last(m)
        got = m(x)
    assert any(w.is_contiguous(memory_format=CL) and not w.is_contiguous() for w in _spatial_conv_weights(m))
    scale = ref.abs().max().item()
    assert ref.isfinite().all() and scale > 0
    err_nchw = (nchw.double() - ref).abs().max().item()
    err_cl = (got.double() - ref).abs().max().item()
    assert err_cl <= 4 * err_nchw + 1e-6 * scale, (err_cl / scale, err_nchw / scale)


def test_to_channels_last_touches_only_conv_weights():
    """Kernel banks of dynamic convolutions are 5-D (``model.to(memory_format=...)`` refuses them) and stay as they
    are; so do 4-D parameters that are not convolution weights."""
    m = vb.create_model("dy_resnet18").eval()
    before = dict(m.named_parameters())
    with pytest.raises(RuntimeError, match="rank 4"):
        m.to(memory_format=CL)  # the reason for to_channels_last
    five = {n: p.stride() for n, p in m.named_parameters() if p.dim() == 5}
    assert five
    vb.to_channels_last(m)
    assert {n: p.stride() for n, p in m.named_parameters() if p.dim() == 5} == five
    assert all(p is before[n] for n, p in m.named_parameters())  # the same Parameter objects (optimizers, hooks)
    assert any(p.is_contiguous(memory_format=CL) and not p.is_contiguous() for p in m.parameters())
    net = nn.Sequential(nn.Conv2d(3, 4, 3))
    net.register_parameter("table", nn.Parameter(torch.randn(1, 4, 3, 3)))
    vb.to_channels_last(net)
    assert net.table.is_contiguous() and net[0].weight.is_contiguous(memory_format=CL)
    with pytest.raises(TypeError, match="to_channels_last expects an nn.Module, got Tensor"):
        vb.to_channels_last(torch.zeros(1, 1, 1, 1))
