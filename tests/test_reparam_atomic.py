"""Folding leaves a network as it was when it fails, and never writes into the tensors it found; folds of layers
under torch's weight tools (prune, parametrizations, the hook-based weight_norm/spectral_norm)."""
import copy
import warnings

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import prune

import visionblocks as vb

D = torch.float64


def _tensors(module):
    return {id(t): (name, t, t._version) for name, t in
            list(module.named_parameters(remove_duplicate=False)) + list(module.named_buffers(remove_duplicate=False))}


def _written(before):
    return [name for name, t, version in before.values() if t._version != version]


def _perturbed(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 1)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.normal_(0, 1)
    return module


def _slot_network(dtype=D):
    """A bias-free conv replaced by ACNet with its BatchNorm kept (the fold moves the bias into that BatchNorm's
    running mean), then a RepMLP block."""
    rep = vb.create_block("repmlp_block", 8, (8, 8), partition=(4, 4))
    net = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), rep).to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vb.replace(net, target="0", block="acnet_block", example_input=torch.randn(1, 8, 8, 8, dtype=dtype),
                   absorb_norm=False)
    return _perturbed(net).eval()


def _quantized_fc1(block):
    """The documented refusal: a RepMLP block whose fc1 was quantized before folding."""
    block.fc1 = torch.ao.quantization.quantize_dynamic(nn.Sequential(block.fc1.float()), {nn.Linear})[0]


@pytest.mark.parametrize("name", vb.list_blocks("reparam") + ["do_conv"])
def test_reparameterize_writes_into_no_tensor_it_found(name):
    info = vb.registry.block_info(name)
    block = _perturbed(vb.create_block(name, *info.example.args, **info.example.kwargs).to(D)).eval()
    before = _tensors(block)
    vb.reparameterize(block)
    assert _written(before) == []


def test_fuse_and_slot_fold_write_into_no_tensor_they_found():
    nets = [_slot_network()] + [_perturbed(vb.create_model(n, num_classes=10).to(D)).eval()
                                for n in ("repvgg_a0", "resnet18", "mobilenetv2", "acnet_resnet18")]
    for net in nets:
        before = _tensors(net)
        vb.fuse(net)
        assert _written(before) == []


@pytest.mark.parametrize("op", [vb.reparameterize, vb.fuse])
def test_failed_fold_leaves_kept_batchnorm_and_outputs_as_they_were(op):
    net = _slot_network(torch.float32)   # (a quantized layer takes float32)
    _quantized_fc1(net[3])
    x = torch.randn(2, 8, 8, 8)
    running_mean = net[1].running_mean.clone()
    with torch.no_grad():
        y0 = net(x)
    with pytest.raises(TypeError, match=r"fc1 must be an nn.Linear.*quantized"):
        op(net)
    assert type(net[0]).__name__ == "RepSlot"
    assert torch.equal(net[1].running_mean, running_mean)
    with torch.no_grad():
        assert torch.equal(net(x), y0)


def test_failed_fold_keeps_pruning_hooks_live():
    doc = vb.create_block("do_conv", 16, 16, 3)
    prune.l1_unstructured(doc, "W", amount=0.5)
    rep = vb.create_block("repmlp_block", 16, (8, 8), partition=(4, 4))
    _quantized_fc1(rep)
    net = nn.Sequential(doc, rep).eval()
    with pytest.raises(TypeError):
        vb.reparameterize(net)
    assert prune.is_pruned(doc) and "W_orig" in dict(doc.named_parameters())
    with torch.no_grad():
        doc.W_orig.mul_(2)   # what an optimiser step on W_orig does: the pruned layer must follow it
        doc(torch.randn(1, 16, 8, 8))
    assert torch.equal(doc.W, doc.W_orig * doc.W_mask)


def test_do_conv_with_parametrized_weight_norm_folds():
    from torch.nn.utils.parametrizations import weight_norm
    block = weight_norm(vb.create_block("do_conv", 8, 8, 3).to(D), "W").eval()
    with torch.no_grad():
        block.parametrizations.W.original0.mul_(1.5)   # the magnitude moved away from its initial value
    x = torch.randn(2, 8, 7, 9, dtype=D)
    with torch.no_grad():
        y0 = block(x)
    vb.reparameterize(block)
    assert block.is_reparameterized and not any("W" in k.split(".")[0] for k in block.state_dict())
    torch.testing.assert_close(block(x), y0, rtol=1e-12, atol=1e-12)


def test_pruned_bfloat16_do_conv_folds_like_its_float32_widening():
    torch.manual_seed(0)
    block = vb.create_block("do_conv", 8, 8, 3).bfloat16().eval()
    prune.l1_unstructured(block, "W", amount=0.5)
    with torch.no_grad():
        block(torch.randn(1, 8, 5, 5, dtype=torch.bfloat16))   # (its W recomputed without autograd: copyable)
    wide = copy.deepcopy(block).float()
    prune.remove(wide, "W")
    vb.reparameterize(block)
    vb.reparameterize(wide)
    assert block.conv.weight.dtype is torch.bfloat16
    assert torch.equal(block.conv.weight, wide.conv.weight.bfloat16())   # folded in float32, rounded once


@pytest.mark.parametrize("wrap", ["weight_norm", "spectral_norm"])
def test_hook_based_weight_tools_fold_their_current_weight(wrap):
    def make():
        b = vb.create_block("repvgg_block", 8, 8).to(D)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # (torch deprecates the hook-based forms)
            getattr(torch.nn.utils, wrap)(b.body["conv_kxk"].conv)
        return b
    torch.manual_seed(0)
    block = make()
    x = torch.randn(2, 8, 7, 9, dtype=D)
    opt = torch.optim.SGD(block.parameters(), lr=0.5)
    block(x).square().mean().backward()
    opt.step()                                   # a training step, and no forward since: .weight is stale
    block.eval()
    ref = make()
    ref.load_state_dict(block.state_dict())
    ref.eval()
    vb.reparameterize(block)
    with torch.no_grad():
        torch.testing.assert_close(block(x), ref(x), rtol=1e-10, atol=1e-10)


def test_do_conv_under_hook_based_weight_norm_folds_to_the_deployed_keys():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        block = torch.nn.utils.weight_norm(vb.create_block("do_conv", 8, 8, 3).to(D), "W").eval()
    x = torch.randn(1, 8, 6, 6, dtype=D)
    with torch.no_grad():
        y0 = block(x)
    vb.reparameterize(block)
    deployed = vb.create_block("do_conv", 8, 8, 3, deploy=True).to(D).eval()
    deployed.load_state_dict(block.state_dict())        # strict: no W_g / W_v left over
    torch.testing.assert_close(deployed(x), y0, rtol=1e-12, atol=1e-12)


def test_frozen_repmlp_block_stays_frozen_after_folding():
    block = vb.create_block("repmlp_block", 8, (8, 8), partition=(4, 4)).requires_grad_(False).eval()
    vb.reparameterize(block)
    assert [n for n, p in block.named_parameters() if p.requires_grad] == []


def test_fuse_folds_a_parametrized_conv_with_its_batchnorm():
    from torch.nn.utils.parametrizations import weight_norm
    net = _perturbed(vb.create_model("resnet18", num_classes=10).to(D)).eval()
    weight_norm(net.stem[0].conv)
    with torch.no_grad():
        net.stem[0].conv.parametrizations.weight.original0.mul_(1.5)
    x = torch.randn(1, 3, 64, 64, dtype=D)
    with torch.no_grad():
        y0 = net(x)
    vb.fuse(net)
    assert type(net.stem[0].conv) is nn.Conv2d
    assert [n for n, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)] == []
    with torch.no_grad():
        torch.testing.assert_close(net(x), y0, rtol=1e-10, atol=1e-10)


def test_unchanged_on_error_restores_a_module_defaultdict():
    from collections import defaultdict
    from visionblocks.reparam import unchanged_on_error
    m = nn.Linear(2, 2)
    m.table = defaultdict(list, a=[1])
    with pytest.raises(KeyError):
        with unchanged_on_error(m):
            m.table["b"].append(2)
            raise KeyError("late")
    assert dict(m.table) == {"a": [1]}
