"""A backbone in use (issue 13): the tiny FPN of docs/backbones.md on four very different features-only backbones
(a ResNet with CBAM, MobileViT, VOLO, a RepVGG after reparameterize) learns a synthetic segmentation task; the
other examples of that page run and print what their comments say; a features-only backbone compiles with
``fullgraph=True`` and exports."""
import contextlib
import io
import os
import re

import pytest
import torch

import visionblocks as vb
from visionblocks.features import FeatureListNet

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "backbones.md")
BACKBONES = ["cbam_resnet18", "mobilevit_xxs", "volo_d1", "repvgg_a0"]


def doc_examples() -> dict:
    """The code blocks of docs/backbones.md, by the name on their first line (``# example: <name>``)."""
    text = open(DOC).read()
    return dict(re.findall(r"```python\n# example: (\S+)\n(.*?)```", text, flags=re.S))


def _definitions() -> dict:
    """The fpn example's classes and functions, without its closing loop over the four backbones."""
    code = doc_examples()["fpn"]
    head = code[:code.index("\ntorch.manual_seed(0)\nfor name in")]
    namespace: dict = {}
    exec(compile(head, "docs/backbones.md:fpn", "exec"), namespace)
    return namespace


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is as fast and does not fight the other tests
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", BACKBONES)
def test_tiny_fpn_learns_on_a_features_only_backbone(name):
    ns = _definitions()
    torch.manual_seed(0)
    backbone = ns["backbone"](name)
    assert isinstance(backbone, FeatureListNet)
    if name == "repvgg_a0":  # trained in its folded (plain VGG) form
        assert all(m.is_reparameterized for m in backbone.modules() if hasattr(m, "is_reparameterized"))
    fpn = ns["TinyFPN"](backbone)
    with torch.no_grad():
        out = fpn.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 2, 64, 64)
    losses = ns["train"](fpn, steps=20, batch=4, seed=0)
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert all(map(torch.isfinite, torch.tensor(losses))), losses
    assert last < 0.7 * first, f"{name}: the FPN's loss fell only from {first:.3f} to {last:.3f}: {losses}"


def _run_and_compare(name: str) -> None:
    """Run example ``name``; every ``print(...)  # text`` must print ``text``."""
    code = doc_examples()[name]
    expected = [line.split("#", 1)[1].strip() for line in code.splitlines()
                if line.lstrip().startswith("print(") and "#" in line]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, f"docs/backbones.md:{name}", "exec"), {})
    assert buf.getvalue().splitlines() == expected


@pytest.mark.parametrize("name", ["features", "output-stride"])
def test_doc_examples_print_what_they_say(name):
    _run_and_compare(name)


@pytest.mark.slow
def test_doc_example_export():
    exec(compile(doc_examples()["export"], "docs/backbones.md:export", "exec"), {})


def test_features_only_backbone_compiles_fullgraph_and_exports():
    import torch._dynamo
    torch.manual_seed(0)
    backbone = vb.create_model("resnet18", features_only=True, out_indices=(2, 3, 4)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = backbone(x)
        torch._dynamo.reset()
        got = torch.compile(backbone, fullgraph=True, backend="eager")(x)  # a graph break raises
        exported = torch.export.export(backbone, (x,)).module()(x)
    assert len(got) == len(exported) == len(ref) == 3
    for g, e, r in zip(got, exported, ref):
        torch.testing.assert_close(g, r)
        torch.testing.assert_close(e, r)
