"""The one re-parameterization protocol: top-down walk, idempotence, eval-mode requirement, and the base class
(:class:`visionblocks.reparam.ReparamModule`) that implements it for the library's blocks."""
import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.layers import fuse_conv_bn, fuse_conv_bn_weights
from visionblocks.reparam import ReparamModule, is_reparameterizable
from visionblocks.testing import randomize_bn_stats


class ConvBN(nn.Module):
    """A toy re-parameterizable block: conv + BN folds into one conv."""

    def __init__(self, c):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.is_reparameterized = False
        self.calls = 0

    def forward(self, x):
        return self.bn(self.conv(x))

    def reparameterize(self):
        self.calls += 1
        if self.is_reparameterized:
            return
        self.conv = fuse_conv_bn(self.conv, self.bn)
        self.bn = nn.Identity()
        self.is_reparameterized = True


def test_reparameterize_walks_descendants_and_is_idempotent():
    net = nn.Sequential(ConvBN(4), nn.ReLU(), nn.Sequential(ConvBN(4)))
    randomize_bn_stats(net)
    net.eval()
    x = torch.randn(2, 4, 9, 9)
    ref = net(x)
    assert vb.reparameterize(net) is net
    assert all(m.is_reparameterized for m in net.modules() if isinstance(m, ConvBN))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(net(x), ref, rtol=1e-5, atol=1e-5)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    vb.reparameterize(net)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_reparameterize_refuses_training_mode():
    net = nn.Sequential(ConvBN(4))
    with pytest.raises(RuntimeError, match=r"training mode.*\.eval\(\)"):
        vb.reparameterize(net)
    with pytest.raises(TypeError):
        vb.reparameterize("not a module")


def test_parent_folds_before_children():
    order = []

    class Child(nn.Module):
        def reparameterize(self):
            order.append("child")

    class Parent(nn.Module):
        def __init__(self):
            super().__init__()
            self.child = Child()

        def reparameterize(self):
            order.append("parent")

    vb.reparameterize(Parent().eval())
    assert order == ["parent", "child"]


class ToyRep(ReparamModule):
    """A ReparamModule in a few lines: conv-BN whose inference form is one conv named ``conv``."""

    deployed_name = "conv"

    def __init__(self, c, deploy=False):
        super().__init__(deploy)
        self.c = c
        self.conv = self.build_deployed() if deploy else nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.Identity() if deploy else nn.BatchNorm2d(c)

    def build_deployed(self, device=None, dtype=None):
        return nn.Conv2d(self.c, self.c, 3, padding=1, device=device, dtype=dtype)

    def equivalent_kernel_bias(self):
        return fuse_conv_bn_weights(self.conv.weight, None, self.bn)

    def drop_training_parts(self):
        self.bn = nn.Identity()

    def forward(self, x):
        return self.bn(self.conv(x))


def test_reparam_module_owns_the_protocol():
    """The base class gives a subclass idempotence, the eval-mode guard, the deploy state and no autograd."""
    m = randomize_bn_stats(ToyRep(4)).double()
    assert not m.is_reparameterized and is_reparameterizable(m) and is_reparameterizable(ToyRep)
    with pytest.raises(RuntimeError, match=r"training mode.*\.eval\(\)"):
        m.reparameterize()
    assert not m.is_reparameterized and isinstance(m.bn, nn.BatchNorm2d)
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    m.eval()
    ref = m(x)
    m.reparameterize()
    assert m.is_reparameterized and isinstance(m.bn, nn.Identity) and not m.conv.training
    assert m.conv.weight.dtype == torch.float64 and m.conv.weight.grad_fn is None and m.conv.weight.requires_grad
    torch.testing.assert_close(m(x), ref, rtol=1e-12, atol=1e-12)
    conv = m.conv
    m.train().reparameterize()  # folded: nothing to do, even in training mode
    assert m.conv is conv
    fresh = ToyRep(4, deploy=True).double()
    assert fresh.is_reparameterized
    fresh.load_state_dict(m.state_dict())
    torch.testing.assert_close(fresh(x), ref, rtol=1e-12, atol=1e-12)


def test_library_folds_use_the_base_class():
    from visionblocks.blocks.conv import DOConv2d
    from visionblocks.blocks.reparam import RepMLPBlock, RepVGGBlock
    from visionblocks.blocks.reparam._repmlpnet_block import RepMLPNetBlock
    from visionblocks.blocks.reparam.repvgg_sse_block import RepConv3x3

    for cls in (DOConv2d, RepMLPBlock, RepVGGBlock, RepMLPNetBlock, RepConv3x3):
        assert issubclass(cls, ReparamModule)
        assert cls.reparameterize is ReparamModule.reparameterize, f"{cls.__name__} re-implements the protocol"

