"""Folding (``reparameterize``, ``fuse``) layers that torch's own tools have changed: pruned layers
(``torch.nn.utils.prune``: the weight is recomputed from ``weight_orig * mask`` at each call), parametrized ones
(``torch.nn.utils.parametrize``: the weight is a computed property, the module's class is swapped) and quantized
ones; and the promise that a fold that fails leaves the network as it was."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import parametrize, prune

import visionblocks as vb
from visionblocks import testing as T
from visionblocks.reparam import ReparamModule, unchanged_on_error

from _reference import _rep_blocks

BLOCKS = _rep_blocks()
WEIGHTED = (nn.Conv2d, nn.Linear)


def _block(name: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    info = vb.block_info(name)
    m = T.randomize_bn_stats(T.randomize_params(T.build(info), scale=0.05, seed=1, add=True), seed=2)
    return m.double().eval(), tuple(t.double() for t in T.make_inputs(info))


def _out(m: nn.Module, inputs) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([t.flatten() for t in T.flatten_outputs(m(*inputs))])


def _close(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


class Twice(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 2 * w


@pytest.mark.parametrize("how", ["reparameterize", "fuse"])
@pytest.mark.parametrize("name", BLOCKS)
def test_pruned_layers_fold_their_current_weights(name, how):
    # the weights change after the last forward (an optimiser step): the fold must use weight_orig * mask now,
    # not the weight the last forward computed
    m, inputs = _block(name)
    pruned = [mod for mod in m.modules() if isinstance(mod, WEIGHTED)]
    for mod in pruned:
        prune.l1_unstructured(mod, "weight", amount=0.3)
    _out(m, inputs)
    with torch.no_grad():
        for mod in pruned:
            mod.weight_orig.add_(0.1)
    ref = _out(copy.deepcopy(m), inputs)  # its forward recomputes the pruned weights
    getattr(vb, how)(m)
    assert _close(_out(m, inputs), ref) < 1e-10


@pytest.mark.parametrize("how", ["reparameterize", "fuse"])
@pytest.mark.parametrize("name", BLOCKS)
def test_parametrized_layers_fold_after_eval(name, how):
    # parametrized after .eval(): torch builds the parametrization modules in training mode; that is no BatchNorm
    # in training mode, so the fold goes ahead, with the parametrized weights
    m, inputs = _block(name)
    for mod in list(m.modules()):
        if isinstance(mod, WEIGHTED):
            parametrize.register_parametrization(mod, "weight", Twice())
    for param_name, p in list(m.named_parameters()):  # parameters held directly (DO-Conv's W and D)
        owner, _, leaf = param_name.rpartition(".")
        mod = m.get_submodule(owner)
        if not isinstance(mod, WEIGHTED) and "parametrizations" not in param_name and p.dim() > 1:
            parametrize.register_parametrization(mod, leaf, Twice())
    ref = _out(m, inputs)
    getattr(vb, how)(m)
    assert _close(_out(m, inputs), ref) < 1e-10
    assert not any(parametrize.is_parametrized(mod) for mod in m.modules() if not isinstance(mod, WEIGHTED)), \
        "a folded-away parameter kept its parametrization"


def test_do_conv_parametrized_folds_to_the_deploy_form():
    m, inputs = _block("do_conv")
    parametrize.register_parametrization(m, "W", Twice())
    ref = _out(m, inputs)
    vb.reparameterize(m)
    assert _close(_out(m, inputs), ref) < 1e-10
    info = vb.block_info("do_conv")
    deployed = info.cls(*info.example.args, **{**info.example.kwargs, "deploy": True})
    assert set(m.state_dict()) == set(deployed.state_dict())


def _copy(v):
    if isinstance(v, torch.Tensor):
        return v.clone()
    return tuple(map(_copy, v)) if isinstance(v, (tuple, list)) else v


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_equal, a, b))
    return a == b


def _snapshot(m: nn.Module) -> tuple:  # (a quantized layer's state holds dtypes and packed tuples too)
    return [(n, type(mod)) for n, mod in m.named_modules()], {k: _copy(v) for k, v in m.state_dict().items()}


def _assert_unchanged(m: nn.Module, before: tuple, inputs, ref: torch.Tensor) -> None:
    modules, state = _snapshot(m)
    assert modules == before[0]
    assert state.keys() == before[1].keys() and all(_equal(state[k], before[1][k]) for k in state)
    assert _close(_out(m, inputs), ref) == 0


@pytest.mark.parametrize("how", ["reparameterize", "fuse"])
def test_quantized_repmlp_refuses_and_is_left_as_it_was(how):
    m, inputs = _block("repmlp_block")
    m.float()
    inputs = tuple(t.float() for t in inputs)
    q = torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)
    ref = _out(q, inputs)
    before = _snapshot(q)
    with pytest.raises(TypeError, match="fc1 must be an nn.Linear"):
        getattr(vb, how)(q)
    assert not q.is_reparameterized
    _assert_unchanged(q, before, inputs, ref)


class _FailsAfterInstalling(ReparamModule):
    deployed_name = "fused"

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.fused(x) if self.is_reparameterized else self.bn(self.conv(x))

    def build_deployed(self, device=None, dtype=None):
        return nn.Conv2d(3, 4, 3, padding=1, device=device, dtype=dtype)

    def equivalent_kernel_bias(self):
        return vb.layers.fuse_conv_bn_weights(self.conv.weight, self.conv.bias, self.bn)

    def drop_training_parts(self):
        del self.conv
        raise RuntimeError("failed half-way")


@pytest.mark.parametrize("how", ["method", "reparameterize", "fuse"])
def test_a_failed_fold_leaves_the_network_as_it_was(how):
    torch.manual_seed(0)
    net = nn.Sequential(vb.create_block("repvgg_block", 3, 3), _FailsAfterInstalling()).eval()
    T.randomize_bn_stats(net, seed=1)
    x = torch.randn(2, 3, 8, 8)
    ref, before = _out(net, (x,)), _snapshot(net)
    with pytest.raises(RuntimeError, match="failed half-way"):
        if how == "method":
            net[1].reparameterize()
        else:
            getattr(vb, how)(net)
    assert not net[1].is_reparameterized and not net[0].is_reparameterized
    _assert_unchanged(net, before, (x,), ref)


def test_unchanged_on_error_restores_class_and_parametrizations():
    lin = nn.Linear(3, 3)
    w = lin.weight
    with pytest.raises(ValueError):
        with unchanged_on_error(lin):
            parametrize.register_parametrization(lin, "weight", Twice())
            lin.extra = nn.ReLU()
            raise ValueError
    assert type(lin) is nn.Linear and lin.weight is w and not hasattr(lin, "extra")
    assert "parametrizations" not in dict(lin.named_modules())


@pytest.mark.parametrize("name", ["resnet18", "acnet_resnet18"])
def test_fuse_of_a_pruned_network_uses_the_current_weights(name):
    # the conv-BN folds of fuse read the convolutions' weights as well as the blocks' folds
    torch.manual_seed(0)
    m = T.randomize_bn_stats(vb.create_model(name, num_classes=10), seed=1).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    convs = [(mod, "weight") for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    prune.global_unstructured(convs, pruning_method=prune.L1Unstructured, amount=0.3)
    _out(m, (x,))
    with torch.no_grad():
        for mod, _ in convs:
            mod.weight_orig.mul_(1.5)
    ref = _out(copy.deepcopy(m), (x,))
    vb.fuse(m)
    assert _close(_out(m, (x,)), ref) < 1e-10


@pytest.mark.parametrize("how", ["reparameterize", "fuse"])
@pytest.mark.parametrize("name", ["repvgg_a0", "resnet18", "acnet_resnet18", "dbb_resnet18"])
def test_sync_batchnorm_networks_fold(name, how):
    # after nn.SyncBatchNorm.convert_sync_batchnorm (a DDP recipe), the folds treat SyncBatchNorm as BatchNorm: RepVGG's
    # identity branch raised AttributeError, fuse left every conv-SyncBatchNorm pair unfolded
    torch.manual_seed(0)
    m = T.randomize_bn_stats(vb.create_model(name, num_classes=10), seed=1).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    ref = _out(m, (x,))
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(m)).eval()
    getattr(vb, how)(synced)
    if how == "fuse":
        assert not any(isinstance(mod, nn.SyncBatchNorm) for mod in synced.modules())
    else:
        folded = vb.reparameterize(copy.deepcopy(m))
        assert [type(mod) for mod in synced.modules() if not isinstance(mod, nn.SyncBatchNorm)] == \
            [type(mod) for mod in folded.modules() if not isinstance(mod, nn.BatchNorm2d)]
    assert _close(_out(synced, (x,)), ref) < 1e-10
