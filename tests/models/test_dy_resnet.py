"""Tests of :mod:`visionblocks.models.dy_resnet`."""
import visionblocks as vb
from visionblocks.blocks.conv.dynamic_conv import DynamicConv, set_dynamic_conv_temperature


def test_dy_resnet18_dynamic_convs_and_temperature():
    m = vb.create_model("dy_resnet18")
    dy = [mod for mod in m.modules() if isinstance(mod, DynamicConv)]
    assert len(dy) == 16 and all(d.num_kernels == 4 and d.bias is None for d in dy)
    assert not any(isinstance(mod, DynamicConv) for mod in m.stem.modules())  # the first layer stays static
    set_dynamic_conv_temperature(m, 1.0)
    assert all(float(d.temperature) == 1.0 for d in dy)
