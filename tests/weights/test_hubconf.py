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


def test_each_entry_says_what_pretrained_gives():
    """Every entry used to promise "pretrained=True loads its default published weights", also for the models
    without any (pretrained=True then raised) and those whose files must be fetched by hand."""
    hub = _hubconf()
    for name in vb.list_models():
        doc, tags = getattr(hub, name).__doc__, vb.weights.list_weights(name)
        if not tags:
            assert "No published weights are registered" in doc, name
            continue
        w = vb.weights.get_weights(name)
        assert all(t in doc for t in tags), name
        if w.url is None:
            assert "no direct download URL" in doc and w.page in doc and "pretrained=True" not in doc, name
        else:
            assert f"``pretrained=True`` downloads {w.name}" in doc, name
    assert "No published weights" in hub.acnet_resnet18.__doc__           # one of each, by hand
    assert "no direct download URL" in hub.cbam_resnet50.__doc__
    assert "downloads resnet50." in hub.resnet50.__doc__


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
