"""Tests of :mod:`visionblocks.models.resnet`."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.layers import ConvNormAct
from visionblocks.models.resnet import BasicBlock, Bottleneck, build_resnet


class Recorder(nn.Module):
    """Records its input and returns zeros: the block's output must then be relu(shortcut(x))."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.seen = None

    def forward(self, x):
        self.seen = x
        return torch.zeros_like(x)
@pytest.mark.parametrize("name,block", [("resnet18", BasicBlock), ("resnet50", Bottleneck), ("resnext50_32x4d", Bottleneck)])
def test_attention_sits_after_last_bn_before_addition(name, block):
    m = vb.create_model(name, attn=Recorder).eval()
    blocks = [b for b in m.modules() if isinstance(b, block)]
    assert len(blocks) == (8 if name == "resnet18" else 16)
    b = blocks[3]  # a block with a projection shortcut in stage 2
    x = torch.randn(2, b.conv1.in_channels, 16, 16)
    with torch.no_grad():
        y = b(x)
        branch = b.conv2(b.conv1(x)) if block is BasicBlock else b.conv3(b.conv2(b.conv1(x)))
        assert isinstance(branch, torch.Tensor)
        torch.testing.assert_close(b.attn.seen, branch)  # input of attn = output of the last BN
        torch.testing.assert_close(y, torch.relu(b.shortcut(x)))  # attn output is added before the ReLU
    assert b.attn.channels == branch.shape[1]
def test_attn_by_name_with_kwargs_and_rejects_non_nchw():
    m = vb.create_model("resnet50", attn="se", attn_kwargs={"reduction": 4})
    ses = [x for x in m.modules() if type(x).__name__ == "SqueezeExcite"]
    assert len(ses) == 16 and ses[0].fc1.out_channels == 256 // 4
    with pytest.raises(ValueError, match="'nchw'"):
        vb.create_model("resnet50", attn="mbconv")
    with pytest.raises(TypeError, match="must be a block name"):
        vb.create_model("resnet50", attn=3)
def test_stride_placement():
    r50 = vb.create_model("resnet50")
    b = r50.stages[1][0]
    assert b.conv1.conv.stride == (2, 2) and b.conv2.conv.stride == (1, 1)  # He et al.: stride on the 1x1
    x50 = vb.create_model("resnext50_32x4d")
    b = x50.stages[1][0]
    assert b.conv1.conv.stride == (1, 1) and b.conv2.conv.stride == (2, 2) and b.conv2.conv.groups == 32
    assert b.conv2.conv.in_channels == 256  # 32 groups x 4 (x2 in stage 2)
    v15 = vb.create_model("resnet50", stride_3x3=True)
    assert v15.stages[1][0].conv2.conv.stride == (2, 2)
def test_features_head_and_output_stride():
    m = vb.create_model("resnet34", num_classes=11).eval()
    x = torch.randn(1, 3, 97, 64)
    f = m.forward_features(x)
    assert f.shape == (1, 512, 4, 2)
    assert m.forward_head(f, pre_logits=True).shape == (1, 512)
    torch.testing.assert_close(m(x), m.forward_head(f))
def test_stage_attn_deep_stem_avg_down_and_drop_path():
    m = vb.create_model("resnet50", stage_attn="cbam", stem_type="deep", avg_down=True, drop_path_rate=0.1)
    assert sum(type(x).__name__ == "CBAM" for x in m.modules()) == 3  # between stages only
    assert isinstance(m.stages[1][0].shortcut[0], nn.AvgPool2d)
    assert len(m.stem) == 4
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
    with pytest.raises(ValueError, match="stem_type"):
        vb.create_model("resnet50", stem_type="wide")
def test_stem_layer_factory_and_stem_type_conflict():
    calls = []

    def stem(in_chans, out_channels, act_layer="relu"):
        calls.append((in_chans, out_channels, act_layer))
        return nn.Sequential(nn.Conv2d(in_chans, out_channels, 4, 4))

    m = vb.create_model("resnet18", in_chans=2, stem_layer=stem, stem_width=32, act_layer="silu")
    assert calls == [(2, 32, "silu")] and m.stem[0].out_channels == 32
    assert m.stages[0][0].conv1.conv.in_channels == 32
    with torch.no_grad():
        assert m.eval()(torch.randn(1, 2, 32, 32)).shape == (1, 1000)
    with pytest.raises(ValueError, match="not both"):
        vb.create_model("resnet18", stem_layer=stem, stem_type="deep")
@pytest.mark.parametrize("name,units_per_block", [("resnet18", 2), ("resnet50", 1)])
def test_mid_layer_hook_receives_the_stage(name, units_per_block):
    seen = []

    def hook(in_channels, out_channels, stride=1, groups=1, act_layer="relu", stage=0):
        seen.append((stage, out_channels, stride, act_layer))
        return ConvNormAct(in_channels, out_channels, 3, stride, groups=groups, act_layer=act_layer)

    with torch.device("meta"):
        ref = vb.create_model(name)
        m = vb.create_model(name, mid_layer=hook)
    assert [p.shape for p in m.parameters()] == [p.shape for p in ref.parameters()]  # the default unit, rebuilt
    depths = (2, 2, 2, 2) if name == "resnet18" else (3, 4, 6, 3)
    assert [s for s, *_ in seen] == [s for s, d in enumerate(depths) for _ in range(d * units_per_block)]
    if name == "resnet18":  # a basic block's second unit ends without activation (it follows the addition)
        assert [a for *_, a in seen[:2]] == ["relu", None]
def test_old_hook_names_warn_and_keep_working():
    old = lambda cin, cout, stride=1, groups=1: ConvNormAct(cin, cout, 3, stride, groups=groups)  # noqa: E731
    with pytest.warns(DeprecationWarning, match="mid_layer"), torch.device("meta"):
        m = vb.create_model("resnext50_32x4d", block_kwargs={"mid_layer": old})
    assert m.stages[1][0].conv2.conv.groups == 32 and m.stages[1][0].conv2.conv.stride == (2, 2)
    old_basic = lambda cin, cout, stride=1, act_layer="relu": ConvNormAct(cin, cout, 3, stride, act_layer=act_layer)  # noqa: E731
    with pytest.warns(DeprecationWarning, match="conv_layer"):
        b = BasicBlock(8, 8, conv_layer=old_basic)
    assert isinstance(b.conv2.act, nn.Identity) and isinstance(b.conv1.act, nn.ReLU)
    with pytest.raises(TypeError, match="both"):
        vb.create_model("resnet50", block_kwargs={"mid_layer": old}, mid_layer=old)
def test_blocks_reject_unknown_kwargs():
    with pytest.raises(TypeError):
        BasicBlock(8, 8, width_factor=2)
    with pytest.raises(TypeError):
        vb.create_model("resnet18", block_kwargs={"stride_3x3": True})  # a bottleneck option
def test_build_resnet_merges_block_kwargs_and_user_values_win():
    class Tagged(Bottleneck):
        def __init__(self, *args, tag="", other="", **kwargs):
            super().__init__(*args, **kwargs)
            self.tag, self.other = tag, other

    with torch.device("meta"):
        m = build_resnet(Tagged, (1, 2), {"block_kwargs": {"other": "user"}, "stride_3x3": False},
                         block_kwargs={"tag": "variant"}, last_block_kwargs={"tag": "last"}, stride_3x3=True,
                         channels=(8, 16))
    blocks = [b for b in m.modules() if isinstance(b, Tagged)]
    assert [(b.tag, b.other) for b in blocks] == [("last", "user"), ("variant", "user"), ("last", "user")]
    assert blocks[1].conv1.conv.stride == (2, 2)  # the user's stride_3x3=False replaced the variant's
def test_zero_init_last():
    m = vb.create_model("resnet18", zero_init_last=True)
    assert all(float(b.conv2.bn.weight.abs().sum()) == 0 for b in m.modules() if isinstance(b, BasicBlock))
    assert all(float(b.conv1.bn.weight.abs().sum()) > 0 for b in m.modules() if isinstance(b, BasicBlock))
    r = vb.create_model("rednet26")  # RedNet's authors start every residual branch at zero
    assert all(float(b.conv3.bn.weight.abs().sum()) == 0 for b in r.modules() if isinstance(b, Bottleneck))
