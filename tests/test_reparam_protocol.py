"""The one re-parameterization protocol: top-down walk, idempotence, eval-mode requirement."""
import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.layers import fuse_conv_bn
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
