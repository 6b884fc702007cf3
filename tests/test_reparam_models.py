"""RepVGG-A0/A1/B0, ACNet and DBB ResNet-18: architecture and parameter counts, train-time and deployed,
against closed forms computed here from the papers' tables (meta device: no memory, no compute)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.layers import ConvNormAct, fuse_conv_bn
from visionblocks.testing import count_params, randomize_bn_stats

# RepVGG Table 2: (blocks of stages 2-5, a, b); Table 4: deployed params (M)
REPVGG = {"repvgg_a0": ((2, 4, 14, 1), 0.75, 2.5, 8.30), "repvgg_a1": ((2, 4, 14, 1), 1.0, 2.5, 12.78),
          "repvgg_b0": ((4, 6, 16, 1), 1.0, 2.5, 14.33)}


def _meta(name, **kw):
    with torch.device("meta"):
        return vb.create_model(name, **kw)


def repvgg_counts(layers, a, b, num_classes=1000):
    """(train, deploy) parameter counts of RepVGG from the paper's description: per block a 3x3 conv-BN, a
    1x1 conv-BN and (stride 1, equal widths) an identity BN; deployed, one 3x3 conv with bias."""
    widths = [int(64 * a), int(128 * a), int(256 * a), int(512 * b)]
    blocks = [(3, min(64, int(64 * a)), 2)]
    cin = blocks[0][1]
    for n, w in zip(layers, widths):
        for i in range(n):
            blocks.append((cin, w, 2 if i == 0 else 1))
            cin = w
    head = cin * num_classes + num_classes
    train = sum(9 * i * o + 2 * o + i * o + 2 * o + (2 * o if (i == o and s == 1) else 0) for i, o, s in blocks)
    deploy = sum(9 * i * o + o for i, o, s in blocks)
    return train + head, deploy + head


@pytest.mark.parametrize("name", list(REPVGG))
def test_repvgg_param_counts(name):
    layers, a, b, paper = REPVGG[name]
    train, deploy = repvgg_counts(layers, a, b)
    assert count_params(_meta(name)) == train  # create_model builds the trainable form
    assert count_params(_meta(name, deploy=True)) == deploy
    assert vb.model_info(name).count_kwargs == {"deploy": True}  # the paper counts the deployed network
    assert abs(deploy / 1e6 - paper) <= 0.01 * paper


def test_repvgg_a0_figures():
    """A0: 8.31 M deployed (8,309,384; Table 4 prints 8.30), 9.11 M at training time."""
    train, deploy = repvgg_counts(*REPVGG["repvgg_a0"][:3])
    assert round(deploy / 1e6, 2) == 8.31 and round(train / 1e6, 2) == 9.11


@pytest.mark.parametrize("name", list(REPVGG))
def test_repvgg_shapes(name):
    m = _meta(name, deploy=False)
    f = m.forward_features(torch.empty(1, 3, 224, 224, device="meta"))
    assert f.shape == (1, int(512 * REPVGG[name][2]), 7, 7)
    assert m.stem.stride == 2 and all(stage[0].stride == 2 for stage in m.stages)


def _fold_resnet(m: nn.Module, kxk_only: bool = True) -> nn.Module:
    """Replace every conv-BN unit with a kxk (k > 1) kernel by its fused convolution (ReLU kept)."""
    for name, mod in list(m.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, ConvNormAct) and (child.conv.kernel_size[0] > 1 or not kxk_only):
                fused = nn.Sequential(fuse_conv_bn(child.conv, child.bn), child.act)
                setattr(mod, cname, fused)
    return m


def _conv_shapes(m: nn.Module) -> list[tuple]:
    return [tuple(x.weight.shape) for x in m.modules() if isinstance(x, nn.Conv2d)]


@pytest.mark.parametrize("name", ["acnet_resnet18", "dbb_resnet18"])
def test_deploys_to_exactly_resnet18(name):
    """Deployed, every replaced conv-BN is one convolution with bias: the network is ResNet-18 with those
    BNs folded (same convolutions in the same order, same parameter count)."""
    r18 = _fold_resnet(_meta("resnet18"))
    dep = _meta(name, deploy=True)
    assert _conv_shapes(dep) == _conv_shapes(r18)
    assert count_params(dep) == count_params(r18) == count_params(_meta("resnet18")) - 3904
    train = _meta(name)
    assert count_params(train) > count_params(dep)
    kxk = [x for x in train.modules() if hasattr(x, "reparameterize")]
    assert len(kxk) == 17 and kxk[0].kernel_size == 7  # the 7x7 stem and the 16 3x3 convolutions


@pytest.mark.parametrize("name", ["repvgg_a0", "parnet_s"])
def test_features_survive_reparameterize(name):
    """The feature plan names module paths that folding keeps (it replaces submodules inside the blocks): the
    folded model gives the same features, and a folded features-only backbone runs."""
    torch.manual_seed(0)
    m = randomize_bn_stats(vb.create_model(name)).double().eval()
    x = torch.randn(1, 3, 48, 40, dtype=torch.float64)
    with torch.no_grad():
        before = m.forward_intermediates(x, intermediates_only=True)
        vb.reparameterize(m)
        after = m.forward_intermediates(x, intermediates_only=True)
    assert len(before) == len(after) == 5
    for a, b in zip(before, after):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
    fx = vb.reparameterize(vb.create_model(name, features_only=True, out_indices=(1, 3)).eval())
    with torch.no_grad():
        assert [f.shape[1] for f in fx(torch.randn(1, 3, 32, 32))] == fx.feature_info.channels()


def test_parnet_features_are_the_streams_and_their_fusion():
    """ParNet's features, computed here from its modules in the paper's order: stream 1 (1/4), stream 2 (1/8),
    the fusion of the three streams (1/16), the last downsampling (1/32); pruning drops the later streams."""
    torch.manual_seed(0)
    m = randomize_bn_stats(vb.create_model("parnet_s")).double().eval()
    x = torch.randn(2, 3, 40, 36, dtype=torch.float64)
    with torch.no_grad():
        feats = m.forward_intermediates(x, intermediates_only=True)
        t = m.down1[0](x)
        x1 = m.down1[1](t)
        x2 = m.down2(x1)
        x3 = m.down3(x2)
        s1, s2, s3 = m.streams[0](x1), m.streams[1](x2), m.streams[2](x3)
        fused = m.fuse3(s3, m.fuse2(s2, m.fuse12(s1)))
        want = [t, s1, s2, fused, m.final(fused)]
    for f, w in zip(feats, want):
        torch.testing.assert_close(f, w, rtol=0, atol=0)
    assert m.feature_info.reduction() == [2, 4, 8, 16, 32]
    part = vb.create_model("parnet_s", features_only=True, out_indices=(1,))
    kept = {k.split(".")[0] for k in part.model.state_dict()}
    assert kept == {"down1", "streams"} and all(isinstance(s, nn.Identity) for s in part.model.streams[1:])


@pytest.mark.parametrize("name", ["repvgg_a0", "parnet_s"])
def test_drop_path_rate_is_accepted_without_residual_branches(name):
    """Neither network has a residual branch to drop: the rate is accepted and changes nothing."""
    torch.manual_seed(0)
    a = vb.create_model(name, drop_path_rate=0.3).train()
    torch.manual_seed(0)
    b = vb.create_model(name).train()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(a(x), b(x))
