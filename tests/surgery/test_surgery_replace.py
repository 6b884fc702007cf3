"""visionblocks.replace on plain torch networks and our models (default tier: no torchvision)."""
import copy
import pickle

import pytest
import torch
import torch.nn as nn
from _surgery_nets import TinyNet, same_snapshot, snapshot, train_steps, vgg_style

import visionblocks as vb
from visionblocks.surgery import AbsorbedNorm, RepSlot, SurgeryError, replace

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # the same draw in every run


def is_3x3(name, m):
    return isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)


def _params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("block", ["acnet_block", "diverse_branch_block", "repvgg_block"])
def test_conv_bn_units_fold_back_to_the_original_architecture(block):
    net = TinyNet()
    original = net.state_dict()
    report = replace(net, target=is_3x3, block=block, example_input=X)
    assert report == ["stem.0", "layer1.conv1", "layer1.conv2", "layer2.conv1", "layer2.conv2"]
    assert isinstance(net.layer1.conv1, RepSlot) and isinstance(net.layer1.bn1, AbsorbedNorm)
    assert report.params_added == _params(net) - sum(v.numel() for k, v in original.items()
                                                    if "running" not in k and "num_batches" not in k)
    train_steps(net, X)
    trained = net(X)
    vb.reparameterize(net)
    assert type(net.layer1.conv1) is nn.Conv2d and type(net.layer1.bn1) is nn.BatchNorm2d
    assert type(net.stem[0]) is nn.Conv2d and type(net.stem[1]) is nn.BatchNorm2d
    state = net.state_dict()
    assert list(state) == list(original) and all(state[k].shape == original[k].shape for k in state)
    folded = net(X)
    torch.testing.assert_close(folded, trained, rtol=1e-4, atol=1e-4 * trained.abs().max().item())
    plain = TinyNet()
    plain.load_state_dict(state)  # strict: the exact original architecture
    assert torch.equal(plain.eval()(X), folded)


def test_fold_is_exact_in_float64():
    net = TinyNet().double()
    x = X.double()
    replace(net, target=is_3x3, block="diverse_branch_block", example_input=x)
    train_steps(net, x)
    trained = net(x)
    vb.reparameterize(net)
    torch.testing.assert_close(net(x), trained, rtol=1e-10, atol=1e-10 * trained.abs().max().item())


def test_repvgg_on_a_vgg_style_net_folds_into_biased_convs():
    net = vgg_style()
    original = net.state_dict()
    report = replace(net, target=nn.Conv2d, block="repvgg_block", example_input=X)
    assert report == ["0", "2", "5", "7"]
    assert isinstance(net[2].block.body["identity"], nn.BatchNorm2d)  # in == out, stride 1: RepVGG's identity branch
    assert isinstance(net[1], nn.ReLU)  # no BatchNorm to absorb: the net's own activation follows the block
    assert net[0].block.act.__class__ is nn.Identity  # act_layer=None: the block stands in for a linear conv
    train_steps(net, X)
    trained = net(X)
    vb.reparameterize(net)
    assert list(net.state_dict()) == list(original)
    plain = vgg_style()
    plain.load_state_dict(net.state_dict())
    torch.testing.assert_close(plain.eval()(X), trained, rtol=1e-4, atol=1e-4 * trained.abs().max().item())


def test_our_resnet_folds_back_and_loads_into_a_fresh_one():
    net = vb.create_model("resnet18")
    keys = list(net.state_dict())
    replace(net, target=is_3x3, block="acnet_block", example_input=X)
    train_steps(net, X, steps=1)
    trained = net(X)
    vb.reparameterize(net)
    plain = vb.create_model("resnet18")
    plain.load_state_dict(net.state_dict())
    assert list(plain.state_dict()) == keys
    torch.testing.assert_close(plain.eval()(X), trained, rtol=1e-4, atol=1e-4 * trained.abs().max().item())


@pytest.mark.parametrize("block", ["dynamic_conv", "cond_conv"])
def test_dynamic_convs_on_a_mobilenet(block):
    net = vb.create_model("mobilenetv2", num_classes=10)
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    report = replace(net, target=nn.Conv2d, block=block, example_input=X)
    assert list(report) == convs
    depthwise = net.blocks[1].conv_dw.conv
    assert type(depthwise).__name__ == vb.block_info(block).cls.__name__
    assert depthwise.groups == depthwise.in_channels  # the depthwise geometry went to the block
    assert isinstance(net.blocks[1].conv_dw.bn, nn.BatchNorm2d)  # dynamic convs do not normalise: the BN stays
    net.train()
    net(X).sum().backward()
    assert all(p.grad is not None for p in depthwise.parameters())


def test_ghost_conv_on_1x1s_absorbs_the_bn():
    net = TinyNet(width=8)
    report = replace(net, target=lambda n, m: isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1),
                     block="ghost_conv", example_input=X)
    assert report == ["down"]
    assert type(net.down).__name__ == "GhostConv"
    assert net.eval()(X).shape == (2, 5)
    net2 = vb.create_model("resnet18")
    replace(net2, target="stages.*.*.shortcut.conv", block="ghost_conv", example_input=X)
    assert type(net2.stages[1][0].shortcut.bn) is nn.Identity  # GhostConv normalises: the BN's slot is empty


def test_non_conv_targets_take_their_geometry_from_the_probe():
    net = vb.create_model("resnet18", attn="se")
    report = replace(net, target="stages.*.*.attn", block="eca", example_input=X)
    assert len(report) == 8
    assert all(type(net.get_submodule(n)).__name__ == "EfficientChannelAttention" for n in report)


def test_impossible_geometries_name_module_block_and_need():
    net = TinyNet()
    before = snapshot(net)
    with pytest.raises(SurgeryError, match=r"'acnet_block' cannot take the geometry of 'down' .*needs a kxk kernel "
                                           r"with k > 1"):
        replace(net, target=nn.Conv2d, block="acnet_block", example_input=X)
    assert same_snapshot(before, snapshot(net))
    net.layer1.conv1 = nn.Conv2d(8, 8, 3, 1, padding=2, dilation=2, bias=False)
    before = snapshot(net)
    with pytest.raises(SurgeryError, match=r"'layer1.conv1'.*dilation=2 \(it has no dilation argument\)"):
        replace(net, target=is_3x3, block="diverse_branch_block", example_input=X)
    assert same_snapshot(before, snapshot(net))
    with pytest.raises(SurgeryError, match=r"'se' cannot take the geometry of 'down'.*maps 8 to 16 channels"):
        replace(net, target="down", block="se", example_input=X)
    with pytest.raises(SurgeryError, match="matches no module"):
        replace(net, target="layer9.*", block="acnet_block", example_input=X)


def test_absorb_norm_false_keeps_the_bn():
    net = TinyNet()
    original = net.state_dict()
    replace(net, target="layer1.conv1", block="acnet_block", example_input=X, absorb_norm=False)
    assert type(net.layer1.bn1) is nn.BatchNorm2d
    train_steps(net, X)
    trained = net(X)
    vb.reparameterize(net.eval())
    # the bias-free convolution's folded bias goes into the kept BatchNorm's running mean: the original keys
    assert type(net.layer1.conv1) is nn.Conv2d and net.layer1.conv1.bias is None
    assert list(net.state_dict()) == list(original)
    torch.testing.assert_close(net(X), trained, rtol=1e-4, atol=1e-4 * trained.abs().max().item())
    with pytest.raises(SurgeryError, match="absorb_norm=True, but no BatchNorm"):
        replace(vgg_style(), target="0", block="acnet_block", example_input=X, absorb_norm=True)


class BatchNormReLU(nn.BatchNorm2d):
    """A BatchNorm subclass that does more than normalise (as timm's BatchNormAct2d: BN, then an activation)."""

    def forward(self, x):
        return torch.relu(super().forward(x))


class ConvBnActNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = BatchNormReLU(8)
        self.conv2 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.bn2 = BatchNormReLU(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.bn2(self.conv2(self.bn1(self.conv1(x)))).mean((2, 3)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_norm_that_also_activates_stays_and_takes_the_folded_bias(dtype):
    # timm's EfficientNet/MobileNet: conv (no bias) -> BatchNormAct2d. The subclass is not absorbed (its activation
    # would be lost); the fold's bias goes into its running mean, so the original architecture comes back.
    net = ConvBnActNet().to(dtype)
    x = X.to(dtype)
    original = net.state_dict()
    replace(net, target=is_3x3, block="acnet_block", example_input=x)
    assert type(net.bn1) is BatchNormReLU and isinstance(net.conv1, RepSlot)
    train_steps(net, x)
    trained = net(x)
    vb.reparameterize(net)
    assert type(net.conv1) is nn.Conv2d and net.conv1.bias is None
    state = net.state_dict()
    assert list(state) == list(original)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(net(x), trained, rtol=tol, atol=tol * trained.abs().max().item())
    plain = ConvBnActNet().to(dtype)
    plain.load_state_dict(state)  # strict
    assert torch.equal(plain.eval()(x), net(x))
    with pytest.raises(SurgeryError, match="BatchNormReLU, which does more than normalise"):
        replace(ConvBnActNet(), target="conv1", block="acnet_block", example_input=X, absorb_norm=True)


def test_a_bias_free_conv_without_a_norm_after_it_warns_that_the_fold_adds_a_bias():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1, bias=False))
    with pytest.warns(UserWarning, match=r"2 convolution\(s\) without a bias and without a BatchNorm after them "
                                         r"\('0', '2'\)"):
        replace(net, target=nn.Conv2d, block="acnet_block", example_input=X)
    train_steps(net, X)
    trained = net(X)
    vb.reparameterize(net)
    assert net[0].bias is not None  # the fold's bias has no other place to go
    torch.testing.assert_close(net(X), trained, rtol=1e-4, atol=1e-4 * trained.abs().max().item())


def test_replaced_model_deepcopies_and_pickles_then_folds():
    net = TinyNet()
    replace(net, target=is_3x3, block="acnet_block", example_input=X)
    net.eval()
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert clone.layer1.conv1.norm is clone.layer1.bn1  # the pair stays linked in the copy
        vb.reparameterize(clone)
        assert type(clone.layer1.bn1) is nn.BatchNorm2d
        torch.testing.assert_close(clone(X), net(X), rtol=1e-4, atol=1e-5)
    assert isinstance(net.layer1.conv1, RepSlot)  # the original is untouched


def test_fold_refuses_training_mode():
    net = TinyNet()
    replace(net, target=is_3x3, block="acnet_block", example_input=X)
    with pytest.raises(RuntimeError, match="training mode"):
        vb.reparameterize(net.train())


@pytest.mark.parametrize("bad", [torch.randn(1, 4, 32, 32), [X[:1]], X[:1].long()],
                         ids=["4-channels", "list", "int64"])
def test_an_example_input_the_model_cannot_take_is_a_surgery_error(bad):
    # the first probe's failure is a SurgeryError naming the input (was the raw RuntimeError/TypeError of a conv)
    net = TinyNet()
    before = snapshot(net)
    with pytest.raises(SurgeryError, match=r"replace with acnet_block: the model's forward fails on example_input"):
        replace(net, target=is_3x3, block="acnet_block", example_input=bad)
    with pytest.raises(SurgeryError, match=r"insert se: the model's forward fails on example_input"):
        vb.insert(net, "se", after="layer1.bn2", example_input=bad)
    assert same_snapshot(snapshot(net), before)


def test_surgery_on_something_not_a_module_is_a_type_error():
    with pytest.raises(TypeError, match="replace expects the model as an nn.Module .* got str"):
        replace("resnet18", target="a", block="acnet_block")
    with pytest.raises(TypeError, match="insert expects the model as an nn.Module .* got NoneType"):
        vb.insert(None, "se", preset="se")
