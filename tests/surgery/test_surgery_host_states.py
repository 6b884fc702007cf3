"""Surgery on hosts in states torch's tools leave them in: a module shared by two places, a pruned or
parametrized layer to replace, hooks on the replaced layer."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import parametrize, prune

import visionblocks as vb
from visionblocks.surgery import SurgeryError


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.mid = nn.ReLU()
        self.b = self.a      # weight tying: one module, two places

    def forward(self, x):
        return self.b(self.mid(self.a(x)))


def _state(m):
    return [(n, type(x)) for n, x in m.named_modules(remove_duplicate=False)], \
        {k: v.clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("op,sel", [("insert", nn.Conv2d), ("insert", "b"), ("replace", nn.Conv2d), ("replace", "a")])
def test_a_shared_module_is_refused_naming_its_places(op, sel):
    m = Shared()
    before = _state(m)
    x = torch.randn(1, 8, 8, 8)
    with pytest.raises(SurgeryError, match=r"several places \(a, b\)"):
        if op == "insert":
            vb.insert(m, "se", after=sel, example_input=x)
        else:
            vb.replace(m, sel, "acnet_block", example_input=x)
    after = _state(m)
    assert after[0] == before[0] and all(torch.equal(after[1][k], before[1][k]) for k in before[1])


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.BatchNorm2d(8), nn.ReLU())


class Twice(nn.Module):
    def forward(self, w):
        return 2 * w


@pytest.mark.parametrize("how", ["pruned", "parametrized"])
def test_replacing_a_reparametrised_layer_is_refused(how):
    # (a pruned conv's copy came back from reparameterize with uninitialised weight_orig/weight_mask)
    net = _net()
    if how == "pruned":
        prune.l1_unstructured(net[3], "weight", amount=0.3)
    else:
        parametrize.register_parametrization(net[3], "weight", Twice())
    keys = list(net.state_dict())
    with pytest.raises(SurgeryError, match=f"3 is {how}"):
        vb.replace(net, "3", "acnet_block", example_input=torch.randn(1, 3, 8, 8))
    assert list(net.state_dict()) == keys and type(net[3]).__name__.endswith("Conv2d")


def test_replacing_a_hooked_layer_warns():
    net = _net()
    net[3].register_forward_hook(lambda m, i, o: None)
    with pytest.warns(UserWarning, match="forward hooks on 3 go with the replaced module"):
        vb.replace(net, "3", "acnet_block", example_input=torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("lazy", ["torch", "visionblocks"])
def test_a_host_with_unbuilt_lazy_modules_is_refused_unchanged(lazy):
    # the probe forward would build them (weights drawn from the global generator), which a failed edit cannot undo
    layer = nn.LazyConv2d(8, 3, padding=1) if lazy == "torch" else vb.lazy("se")
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), layer, nn.ReLU())
    x = torch.randn(1, 3, 8, 8)
    kind, rng = type(net[1]), torch.get_rng_state()
    with pytest.raises(SurgeryError, match=r"lazy modules not built yet \(1\)"):
        vb.insert(net, "cbam", after="2", example_input=x)
    assert type(net[1]) is kind and torch.equal(torch.get_rng_state(), rng)
    net(torch.randn(1, 3, 8, 8))     # built: now it can be edited
    vb.insert(net, "cbam", after="2", example_input=torch.randn(1, 3, 8, 8))


class TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("op", ["insert", "replace"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_a_new_block_takes_the_layout_of_the_maps_it_sees(op, channels_last):
    """In a host whose convolution weights are channels-last (so are its maps: ``vb.fuse`` on the CPU does this),
    the new block's convolution weights are channels-last too; in an NCHW host they stay NCHW; the output is the
    same either way."""
    torch.manual_seed(0)
    m = TwoConvs().eval()
    if channels_last:
        m = vb.to_channels_last(m)
    x = torch.randn(2, 3, 16, 16)
    if op == "insert":
        names = vb.insert(m, "cbam", after="a", example_input=x)
    else:
        names = vb.replace(m, "b", "acnet_block", example_input=x)
    new = m.get_submodule(names[0])
    weights = [c.weight for c in new.modules() if isinstance(c, nn.Conv2d)]
    assert weights
    if channels_last:  # (a 1x1 weight is both; the 3x3 and 7x7 ones are not NCHW)
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
        assert any(not w.is_contiguous() for w in weights)
    else:
        assert all(w.is_contiguous() for w in weights)
    with torch.no_grad():
        y = m(x)
        ref = copy.deepcopy(m)
        for c in ref.modules():
            if isinstance(c, nn.Conv2d):
                c.weight.data = c.weight.data.contiguous()
        torch.testing.assert_close(y, ref(x), rtol=1e-5, atol=1e-5)
