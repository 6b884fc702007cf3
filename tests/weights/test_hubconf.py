"""hubconf.py: torch.hub's entry points (``torch.hub.load(repo, "resnet50", pretrained=...)``)."""
import importlib.util
import pathlib

import torch

import visionblocks as vb

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _hubconf():
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_model_is_an_entry_point():
    hub = _hubconf()
    assert hub.dependencies == ["torch"]
    entries = {n for n in dir(hub) if callable(getattr(hub, n)) and not n.startswith("_")}  # what hub.list shows
    assert entries == set(vb.list_models()) | {"create_model", "create_block"}
    assert "arxiv.org" in hub.resnet50.__doc__ or "http" in hub.resnet50.__doc__


def test_hub_load_builds_and_loads_weights(tmp_path):
    torch.manual_seed(0)
    ref = vb.create_model("resnet18", num_classes=7)
    path = tmp_path / "resnet18_7.pth"
    torch.save(ref.state_dict(), path)
    m = torch.hub.load(str(ROOT), "resnet18", source="local", num_classes=7, pretrained=str(path))
    assert isinstance(m, type(ref)) and m.num_classes == 7
    for k, v in ref.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    block = torch.hub.load(str(ROOT), "create_block", "cbam", 64, source="local")
    assert isinstance(block, vb.block_info("cbam").cls) and block.channels == 64
