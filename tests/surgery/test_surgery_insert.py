"""visionblocks.insert on plain torch networks and on our own models (default tier: no torchvision)."""
import copy

import pytest
import torch
import torch.nn as nn
from _surgery_nets import TinyNet, same_snapshot, snapshot

import visionblocks as vb
from visionblocks.surgery import InsertedAfter, SurgeryError, insert

X = torch.randn(2, 3, 32, 32)


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_glob_insert_infers_channels_and_reports():
    net = TinyNet()
    before = _params(net)
    report = insert(net, "se", after="layer*.bn2", example_input=X, reduction=4)
    assert report == ["layer1.bn2.block", "layer2.bn2.block"]
    assert isinstance(net.layer1.bn2, InsertedAfter)
    assert net.layer1.bn2.block.fc1.in_channels == 8 and net.layer2.bn2.block.fc1.in_channels == 16
    assert report.params_before == before and report.params_after == _params(net)
    assert report.params_added == sum(_params(net.get_submodule(n)) for n in report) > 0
    assert report.per_module == {n: _params(net.get_submodule(n)) for n in report}
    assert net.eval()(X).shape == (2, 5)


def test_inserted_block_really_runs():
    net = TinyNet().eval()
    y0 = net(X)
    insert(net, "se", after="layer2.bn2", example_input=X)
    gate = net.layer2.bn2.block
    nn.init.zeros_(gate.fc2.weight)
    nn.init.constant_(gate.fc2.bias, -30.0)  # gate ~ 0: the block's branch is switched off
    y1 = net(X)
    assert not torch.allclose(y0, y1)


@pytest.mark.parametrize("selector", [nn.BatchNorm2d, lambda name, m: isinstance(m, nn.BatchNorm2d)])
def test_class_and_callable_selectors(selector):
    net = TinyNet()
    report = insert(net, "eca", after=selector, example_input=X)
    assert report == ["stem.1.block", "layer1.bn1.block", "layer1.bn2.block", "layer2.bn1.block", "layer2.bn2.block"]


def test_after_a_sequential_appends_to_it():
    net = TinyNet()
    report = insert(net, "cbam", after="stem", example_input=X, reduction=2)
    assert report == ["stem.3"] and len(net.stem) == 4
    assert _params(net.stem[3]) == _params(vb.create_block("cbam", 8, reduction=2))


def test_append_to_a_sequential_with_named_keys_keeps_every_module():
    # a Sequential built from an OrderedDict can hold a module under the key "2" at index 1: appending under
    # str(len(seq)) would overwrite it (and the shape check would not notice a lost BatchNorm)
    from collections import OrderedDict
    seq = nn.Sequential(OrderedDict([("conv", nn.Conv2d(3, 8, 3, padding=1)), ("2", nn.BatchNorm2d(8))]))
    net = nn.Sequential(seq, nn.ReLU())
    bn = seq[1]
    report = insert(net, "se", after="0", example_input=X, reduction=2)
    assert report == ["0.3"] and list(seq._modules) == ["conv", "2", "3"]
    assert seq._modules["2"] is bn and isinstance(seq._modules["3"], type(vb.create_block("se", 8, reduction=2)))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_inserted_modules_take_the_mode_of_their_place(mode):
    net = TinyNet().train(mode == "train")
    insert(net, "se", after="down", example_input=X)
    assert {m.training for m in net.modules()} == {mode == "train"}  # the wrapper, too


def test_inserted_after_reads_through_and_loads_original_keys():
    net = TinyNet()
    original = {k: v.clone() for k, v in net.state_dict().items()}
    insert(net, "se", after="down", example_input=X)
    assert net.down.out_channels == 16 and net.down.stride == (2, 2)  # read through to the wrapped conv
    for p in net.parameters():
        nn.init.normal_(p)
    result = net.load_state_dict(original, strict=False)
    assert not result.unexpected_keys
    assert sorted(result.missing_keys) == sorted(f"down.block.{k}" for k in net.down.block.state_dict())
    assert torch.equal(net.down.module.weight, original["down.weight"])


def test_preset_se_equals_resnet_built_with_attn():
    net = vb.create_model("resnet50")
    report = insert(net, "se", preset="se", example_input=X)
    ref = vb.create_model("resnet50", attn="se")
    assert len(report) == 16 and report[0] == "stages.0.0.attn"
    assert list(ref.state_dict()) == list(net.state_dict())
    assert report.params_after == _params(ref)
    ref.load_state_dict(net.state_dict())
    assert torch.equal(ref.eval()(X), net.eval()(X))


def test_preset_stage_end_equals_bam_resnet():
    net = vb.create_model("resnet50")
    report = insert(net, "bam", preset="stage-end", example_input=X)
    ref = vb.create_model("bam_resnet50")
    assert report == ["stages.0.3", "stages.1.4", "stages.2.6"]
    assert list(ref.state_dict()) == list(net.state_dict())
    ref.load_state_dict(net.state_dict())
    assert torch.equal(ref.eval()(X), net.eval()(X))


def test_preset_se_on_our_inverted_residuals():
    net = vb.create_model("mobilenetv2")
    report = insert(net, "eca", preset="se", example_input=X)
    assert len(report) == len(net.blocks) and report[0] == "blocks.0.conv_pwl.block"
    assert net.eval()(X).shape == (2, 1000)


def test_preset_on_an_occupied_slot_goes_after_the_occupant():
    net = vb.create_model("resnet18", attn="se")
    report = insert(net, "eca", preset="se", example_input=X)
    assert report[0] == "stages.0.0.attn.block"
    assert type(net.stages[0][0].attn.module).__name__ == "SqueezeExcite"


def test_preset_refuses_unknown_architecture():
    with pytest.raises(SurgeryError, match="does not recognise the architecture of TinyNet"):
        insert(TinyNet(), "se", preset="se", example_input=X)
    with pytest.raises(SurgeryError, match="unknown preset"):
        insert(TinyNet(), "se", preset="middle", example_input=X)


def test_shape_changing_block_is_refused_and_model_unchanged():
    net = TinyNet()
    before = snapshot(net)
    with pytest.raises(SurgeryError, match=r"'acnet_block' at 'layer1.bn1.block' maps \(2, 8, 16, 16\) to "
                                           r"\(2, 8, 8, 8\)"):
        insert(net, "acnet_block", after="layer*.bn*", example_input=X, stride=2)
    assert same_snapshot(before, snapshot(net))


def test_unbuildable_block_is_refused_before_any_edit():
    net = TinyNet()
    before = snapshot(net)
    with pytest.raises(SurgeryError, match="cannot build block 'se' for 'layer1.bn1'.*unexpected keyword"):
        insert(net, "se", after="layer*.bn*", example_input=X, squeeze=3)
    assert same_snapshot(before, snapshot(net))


def test_bad_selectors_and_layouts():
    with pytest.raises(SurgeryError, match=r"after='layer1.bn9' matches no module of TinyNet; close names: .*layer1.bn1"):
        insert(TinyNet(), "se", after="layer1.bn9", example_input=X)
    with pytest.raises(SurgeryError, match="layout 'nlc'"):
        insert(TinyNet(), "self_attention", after="layer1.bn1", example_input=X)
    with pytest.raises(SurgeryError, match=r"output of 'fc' is \(2, 5\), not \(B, C, H, W\)"):
        insert(TinyNet(), "se", after="fc", example_input=X)
    with pytest.raises(TypeError, match="exactly one of after="):
        insert(TinyNet(), "se", example_input=X)


def test_probe_leaves_state_modes_and_random_stream_alone():
    net = TinyNet().train()
    stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    insert(net, "eca", after="layer1.bn2")  # default probe input: (1, 3, 224, 224)
    assert all(m.training for m in net.modules())
    assert all(torch.equal(net.state_dict()[k.replace("bn2.", "bn2.module.") if k.startswith("layer1.bn2.") else k], v)
               for k, v in stats.items())
    net = TinyNet()
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    insert(net, lambda channels: nn.Identity(), after="layer1.bn2")  # a block without parameters draws nothing
    assert torch.equal(torch.rand(3), expected)


def test_fixed_size_block_gets_the_spatial_size():
    net = TinyNet()
    report = insert(net, "smlp_block", after="layer2.bn2", example_input=X)
    assert _params(net.get_submodule(report[0])) == _params(vb.create_block("smlp_block", 16, size=(8, 8)))
    assert net.eval()(X).shape == (2, 5)
    with pytest.raises(ValueError):  # built for 8x8: another size is refused, so the size really was inferred
        net(torch.randn(2, 3, 64, 64))


def test_new_block_follows_device_dtype_and_mode():
    net = TinyNet().double().eval()
    insert(net, "cbam", after="layer1.bn2", example_input=X.double(), reduction=2)
    gate = net.layer1.bn2.block
    assert all(p.dtype == torch.float64 for p in gate.parameters()) and not gate.training


def test_nested_matches_report_the_final_names():
    net = TinyNet()
    report = insert(net, "eca", after="layer1*", example_input=X)  # "*" matches dots: layer1 and all inside it
    assert report[0] == "layer1.block" and "layer1.module.bn2.block" in report
    assert all(type(net.get_submodule(n)).__name__ == "EfficientChannelAttention" for n in report)


class _ChannelsLastStage(nn.Module):
    """A patch embedding then a LayerNorm and a Linear over the last axis: a (B, H, W, C) map, as timm's Swin
    stages and ConvNeXt blocks with conv_mlp=False pass them."""

    def __init__(self, channels=24):
        super().__init__()
        self.proj = nn.Conv2d(3, channels, 4, 4)
        self.norm = nn.LayerNorm(channels)
        self.fc = nn.Linear(channels, channels)

    def forward(self, x):
        return self.fc(self.norm(self.proj(x).permute(0, 2, 3, 1)))


class _ToNCHW(nn.Module):
    def forward(self, x):
        return x.permute(0, 3, 1, 2)


@pytest.mark.parametrize("after", ["0", "0.norm"])
def test_a_channels_last_map_is_refused_not_gated_along_its_height(after):
    """insert took out.shape[1] as the channel count of any 4-D output: after a Swin stage it built SE(16) for a
    (2, 16, 16, 96) map and gated its rows, silently (the shape was kept, so the check after the edit passed)."""
    net = nn.Sequential(_ChannelsLastStage(), _ToNCHW(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 5))
    before = copy.deepcopy(net.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(SurgeryError, match=r"channels last \(B, H, W, C\).*(LayerNorm over 24|Linear, 24)"):
        vb.insert(net, "se", after=after, example_input=x)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items()) and len(net) == 5
    vb.insert(net, "se", after="1", example_input=x)   # after the permute back: (B, C, H, W), 24 channels
    assert net[1].block.fc1.in_channels == 24


def test_a_detector_whose_number_of_boxes_changes_can_be_edited():
    """The check after an edit compared the whole output's shapes: a detector's boxes per image change with any
    weight, so an insert into it failed by chance ("the model's output changed from ... (92, 4) ... to (93, 4)").
    Tensors inside lists and dicts may change their first dimension; every edited module's own shape is still
    checked."""
    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
            self.score = nn.Conv2d(8, 1, 1)

        def forward(self, x):
            s = self.score(self.body(x)).flatten(1)
            return [{"scores": si[si > 0], "boxes": si[si > 0].unsqueeze(1).expand(-1, 4)} for si in s]

    torch.manual_seed(0)
    net, x = Detector(), torch.randn(2, 3, 16, 16)
    counts = [len(d["scores"]) for d in net(x)]
    vb.insert(net, "cbam", after="body.1", example_input=x, reduction=2)
    assert [len(d["scores"]) for d in net(x)] != counts   # the edit moved the detections: allowed
    with pytest.raises(SurgeryError, match="maps"):      # a block that changes its map's shape is still refused
        vb.insert(net, lambda c: nn.Conv2d(c, c, 3, stride=2, padding=1), after="body.0", example_input=x)
