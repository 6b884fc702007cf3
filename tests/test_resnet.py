"""ResNet/ResNeXt structure: where attention goes, stride placement, options."""
import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.models.resnet import BasicBlock, Bottleneck


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
    with pytest.raises(TypeError, match="attn must be"):
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
