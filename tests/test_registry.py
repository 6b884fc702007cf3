"""The public registry API: names, errors, user registration."""
import pytest
import torch
import torch.nn as nn

import visionblocks as vb
from visionblocks.registry import unregister_block


def test_unknown_names_suggest_closest():
    with pytest.raises(ValueError, match=r"did you mean: .*cbam"):
        vb.create_block("cbm", 64)
    with pytest.raises(ValueError, match=r"did you mean: .*resnet50"):
        vb.create_model("resnet05")
    with pytest.raises(ValueError, match="unknown block"):
        vb.block_info("definitely_not_a_block")


def test_list_and_info():
    assert vb.list_blocks() == sorted(vb.list_blocks())
    assert {"se", "cbam", "eca"} <= set(vb.list_blocks("attention"))
    assert all(vb.block_info(n).family == "conv" for n in vb.list_blocks("conv"))
    with pytest.raises(ValueError, match="family must be one of"):
        vb.list_blocks("nope")
    info = vb.block_info("se")
    assert info.cls.__name__ == "SqueezeExcite" and info.layout == "nchw" and not info.fixed_size
    assert isinstance(vb.create_block("se", 32, reduction=4), info.cls)
    assert "resnet50" in vb.list_models("resnet*") and "se_resnet50" not in vb.list_models("resnet*")
    assert vb.model_info("resnet50").input_size == (3, 224, 224)


def test_create_model_num_classes_in_chans():
    m = vb.create_model("resnet18", num_classes=5, in_chans=1).eval()
    assert m(torch.randn(1, 1, 32, 32)).shape == (1, 5)
    assert vb.create_model("resnet18", num_classes=0).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 512)


def test_users_can_register_their_own_block():
    @vb.register_block("user_gate_for_test", family="attention", layout="nchw", paper="Me 2026",
                       url="https://example.org", example=vb.Example(args=(8,), input_shape=(1, 8, 5, 5)))
    class UserGate(nn.Module):
        """A gate."""

        def __init__(self, channels):
            super().__init__()
            self.channels = channels

        def forward(self, x):
            return x * torch.sigmoid(x)

    try:
        assert "user_gate_for_test" in vb.list_blocks("attention")
        assert isinstance(vb.create_block("user_gate_for_test", 8), UserGate)
        # a user block can be inserted into a ResNet by name
        net = vb.create_model("resnet18", attn="user_gate_for_test", num_classes=3)
        assert sum(isinstance(m, UserGate) for m in net.modules()) == 8
    finally:
        unregister_block("user_gate_for_test")
    assert "user_gate_for_test" not in vb.list_blocks()


def test_register_block_validates_its_arguments():
    ex = vb.Example(args=(8,), input_shape=(1, 8, 5, 5))
    with pytest.raises(ValueError, match="family"):
        vb.register_block("x", family="fancy", layout="nchw", paper="p", url="u", example=ex)
    with pytest.raises(ValueError, match="layout"):
        vb.register_block("x", family="conv", layout="nhwc", paper="p", url="u", example=ex)
    with pytest.raises(TypeError, match="Example"):
        vb.register_block("x", family="conv", layout="nchw", paper="p", url="u", example={"args": (8,)})
    with pytest.raises(ValueError, match="already registered"):
        vb.register_block("se", family="attention", layout="nchw", paper="p", url="u", example=ex)(type("Other", (nn.Module,), {}))
    with pytest.raises(TypeError, match="nn.Module"):
        vb.register_block("x", family="conv", layout="nchw", paper="p", url="u", example=ex)(int)


def test_a_name_taken_by_an_alias_or_in_another_case_or_not_a_name_is_refused():
    # "sk" is the former name of selective_kernel_conv: registering a user block under it was accepted, then every
    # lookup ("sk", create_block, testing.check_block) resolved to the built-in block
    ex = vb.Example(args=(8,), input_shape=(1, 8, 5, 5))
    user = type("UserBlock", (nn.Module,), {"__init__": lambda self, c: nn.Module.__init__(self)})
    kw = dict(family="attention", layout="nchw", paper="p", url="u", example=ex)
    with pytest.raises(ValueError, match="'sk' is taken: it is a former name of 'selective_kernel_conv'"):
        vb.register_block("sk", **kw)(user)
    with pytest.raises(ValueError, match=r"block 'SE' is already registered \(as 'se'\)"):
        vb.register_block("SE", **kw)(user)
    for bad, error in ((123, TypeError), (None, TypeError), ("", ValueError), ("my block", ValueError)):
        with pytest.raises(error, match="block name must be"):
            vb.register_block(bad, **kw)(user)
    with pytest.raises(ValueError, match="model name must be a non-empty str without spaces or dots"):
        vb.register_model("my.model", paper="p", url="u")(lambda num_classes=1000, in_chans=3: nn.Identity())
    with pytest.raises(ValueError, match="model 'ResNet18' is already registered"):
        vb.register_model("ResNet18", paper="p", url="u")(lambda num_classes=1000, in_chans=3: nn.Identity())
    assert vb.block_info("sk").cls.__name__ == "SelectiveKernelConv" and "SE" not in vb.list_blocks()
    assert vb.list_blocks() == sorted(vb.list_blocks())  # nothing unsortable was registered


def test_export_reasons_are_sentences_in_the_registry():
    ex = vb.Example(args=(8,), input_shape=(1, 8, 5, 5))
    for key in ("onnx_unsupported", "dynamic_export_unsupported"):
        for bad in ("no", "", 3):
            with pytest.raises(ValueError, match=key):
                vb.register_block("x", family="conv", layout="nchw", paper="p", url="u", example=ex, **{key: bad})
    reason = vb.block_info("coatnet_attention").dynamic_export_unsupported
    assert reason and "export" in reason and "rel_size" in reason
    assert vb.block_info("se").dynamic_export_unsupported is None
    assert not hasattr(vb.block_info("coatnet_attention").cls, "dynamic_export_unsupported")  # the registry's, only


def test_cli_info_shows_the_dynamic_export_reason(capsys):
    from visionblocks.cli import main
    assert main(["info", "coatnet_attention"]) == 0
    out = capsys.readouterr().out
    assert "no dynamic batch/size: " + vb.block_info("coatnet_attention").dynamic_export_unsupported in out
    assert main(["info", "se"]) == 0
    assert "dynamic" not in capsys.readouterr().out
    # a model's reason too (a copy of resnet18's entry that declares one)
    import dataclasses
    from visionblocks import testing as T
    info = dataclasses.replace(vb.model_info("resnet18"), name="resnet18_static_toy",
                               dynamic_export_unsupported="a toy reason that names why it cannot stay dynamic")
    with T._registered(info):
        assert main(["info", "resnet18_static_toy"]) == 0
    assert "no dynamic batch/size: a toy reason that names why it cannot stay dynamic" in capsys.readouterr().out
    assert main(["info", "resnet18"]) == 0
    assert "dynamic" not in capsys.readouterr().out


def test_public_api_and_every_module_declares_all():
    import importlib
    import pkgutil

    assert {"testing", "measure", "layers", "blocks", "models", "create_block", "reparameterize"} <= set(vb.__all__)
    for name in vb.__all__:
        assert hasattr(vb, name), f"visionblocks.__all__ lists {name!r}, which does not exist"
    for m in pkgutil.walk_packages(vb.__path__, "visionblocks."):
        if m.name.endswith("__main__"):
            continue
        try:
            mod = importlib.import_module(m.name)
        except ImportError as e:  # an optional integration whose package is not installed
            assert e.name and not e.name.startswith("visionblocks"), f"{m.name}: {e}"
            continue
        assert isinstance(getattr(mod, "__all__", None), (list, tuple)), f"{m.name} has no __all__"
        missing = [n for n in mod.__all__ if not hasattr(mod, n)]
        assert not missing, f"{m.name}.__all__ lists names it does not define: {missing}"
