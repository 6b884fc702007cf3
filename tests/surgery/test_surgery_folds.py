"""Folds (visionblocks.reparameterize, visionblocks.fuse) of networks that surgery changed, or that carry hooks or
frozen parameters: a fold never drops what it cannot compute, says what it drops, and keeps what is frozen."""
import warnings

import pytest
import torch
import torch.nn as nn
from _surgery_nets import same_snapshot, snapshot

import visionblocks as vb
from visionblocks import testing as T

X = torch.randn(2, 8, 16, 16)
FOLDS = [vb.reparameterize, vb.fuse]


def _rep_net() -> nn.Module:
    net = nn.Sequential(vb.create_block("repvgg_block", 8, 8), vb.create_block("acnet_block", 8, 8)).eval()
    T.randomize_bn_stats(net, seed=2)
    return net


@pytest.mark.parametrize("fold", FOLDS, ids=lambda f: f.__name__)
def test_a_block_inserted_into_a_training_form_is_refused_by_the_fold(fold):
    # the folds read the branches' convolutions (through InsertedAfter's attribute read-through) and dropped the
    # inserted gate: repvgg_a0 with CBAM after every 3x3 convolution folded 2.3 off in 0.2, silently
    net = _rep_net()
    vb.insert(net, "cbam", after="0.body.conv_kxk.conv", example_input=X, reduction=2)
    with torch.no_grad():
        ref = net(X)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"put '0\.body\.conv_kxk\.conv\.block' into the training form of the "
                                         r"re-parameterizable '0'.*nothing was folded"):
        fold(net)
    assert same_snapshot(before, snapshot(net))
    with torch.no_grad():
        assert torch.equal(net(X), ref)


def test_a_block_replaced_into_a_training_form_is_refused_by_the_fold():
    # the fold failed on the RepSlot standing in the branch convolution's place (no .weight): now a ValueError
    net = _rep_net()
    vb.replace(net, "1.body.square.conv", "acnet_block", example_input=X)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"put '1\.body\.square\.conv' into the training form") as info:
        vb.reparameterize(net)
    assert isinstance(info.value.__cause__, AttributeError)
    assert same_snapshot(before, snapshot(net))


@pytest.mark.parametrize("fold", FOLDS, ids=lambda f: f.__name__)
def test_blocks_inserted_after_re_parameterizable_blocks_fold(fold):
    net = _rep_net()
    vb.insert(net, "cbam", after="0", example_input=X, reduction=2)  # after the block: outside its fold
    vb.insert(net, "eca", after="1.se", example_input=X)  # into a slot the fold keeps
    with torch.no_grad():
        ref = net(X)
        fold(net)
        torch.testing.assert_close(net(X), ref, rtol=1e-5, atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net[0].module.modules())


@pytest.mark.parametrize("fold", FOLDS, ids=lambda f: f.__name__)
def test_folds_warn_about_the_forward_hooks_they_drop(fold):
    net = _rep_net()
    seen = []
    net[0].body.conv_1x1.bn.register_forward_hook(lambda m, a, o: seen.append("bn"))
    net[1].register_forward_pre_hook(lambda m, a: seen.append("block"))  # kept: the block folds in place
    with pytest.warns(UserWarning, match=r"the forward hooks on 0\.body\.conv_1x1\.bn went with the layers it "
                                         r"folded") as record:
        fold(net)
    assert len(record) == 1  # (the hook on net[1], which folds in place, is not named: the match ends at "bn went")
    with torch.no_grad():
        net(X)
    assert seen == ["block"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fold(_rep_net())  # nothing hooked: nothing said


def test_fuse_warns_about_hooks_on_a_folded_conv_bn_pair():
    net = vb.create_model("resnet18").eval()
    net.get_submodule("stem.0.conv").register_forward_pre_hook(lambda m, a: None)
    with pytest.warns(UserWarning, match=r"fuse: the forward hooks on stem\.0\.conv went"):
        vb.fuse(net)


@pytest.mark.parametrize("trainable", [False, True])
@pytest.mark.parametrize("fold", FOLDS, ids=lambda f: f.__name__)
def test_folds_keep_a_frozen_network_frozen(fold, trainable):
    # the folded convolutions were new trainable Parameters: fuse on a frozen ResNet-18 made 11.2 M of its 11.7 M
    # parameters trainable again
    net = vb.create_model("resnet18", num_classes=4).eval()
    rep = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()).eval()
    vb.replace(rep, "0", "acnet_block", example_input=X)  # a RepSlot: it folds back into a convolution
    for m in (net, rep, _rep_net()):
        m.requires_grad_(trainable)
        fold(m)
        assert {p.requires_grad for p in m.parameters()} == {trainable}
