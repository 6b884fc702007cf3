"""insert/replace on torchvision's ResNet, ResNeXt, MobileNetV2/V3, EfficientNet and ConvNeXt (integration tier)."""
import pytest

torchvision = pytest.importorskip("torchvision")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from _integration_docs import run_example  # noqa: E402
from torchvision import models  # noqa: E402

import visionblocks as vb  # noqa: E402
from visionblocks.surgery import SurgeryError, insert, replace  # noqa: E402

X = torch.randn(2, 3, 64, 64)


def is_3x3(name, m):
    return isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)


def train_steps(model, x, steps=1):
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(steps):
        loss = model(x).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def test_doc_example_folds_back_into_a_plain_resnet50(monkeypatch):
    ns = run_example("torchvision-acnet", monkeypatch)
    assert len(ns["report"]) == 16 and ns["report"].params_added == 7_559_936
    torch.testing.assert_close(ns["plain"].eval()(X), ns["net"](X), rtol=0, atol=0)


@pytest.mark.parametrize("block", ["acnet_block", "diverse_branch_block"])
def test_resnet50_trained_with_a_rep_block_is_a_plain_resnet50(block):
    net = models.resnet50()
    keys = list(net.state_dict())
    replace(net, target=is_3x3, block=block, example_input=X[:1])
    train_steps(net, X)
    trained = net(X)
    vb.reparameterize(net)
    assert type(net.layer1[0].conv2) is nn.Conv2d and type(net.layer1[0].bn2) is nn.BatchNorm2d
    plain = models.resnet50()
    plain.load_state_dict(net.state_dict())  # strict
    assert list(plain.state_dict()) == keys
    out = plain.eval()(X)
    torch.testing.assert_close(out, trained, rtol=1e-4, atol=1e-4 * trained.abs().max().item())


def test_preset_se_on_resnets_adds_senets_parameters():
    net = models.resnet50()
    report = insert(net, "se", preset="se", example_input=X[:1])
    assert len(report) == 16 and report[0] == "layer1.0.bn3.block"
    assert report.params_added == 2_530_992  # what our resnet50(attn="se") adds: SENet's SE-ResNet-50
    assert net.eval()(X).shape == (2, 1000)
    report = insert(models.resnext50_32x4d(), "eca", preset="se", example_input=X[:1])
    assert len(report) == 16
    report = insert(models.resnet18(), "cbam", preset="se", example_input=X[:1])
    assert report[0] == "layer1.0.bn2.block" and len(report) == 8


def test_preset_stage_end_on_resnet():
    net = models.resnet18()
    report = insert(net, "bam", preset="stage-end", example_input=X[:1])
    assert report == ["layer1.2", "layer2.2", "layer3.2"]


@pytest.mark.parametrize("name,count,first", [
    ("mobilenet_v2", 17, "features.1.conv.3"),
    ("mobilenet_v3_small", 11, "features.1.block.3"),
    ("efficientnet_b0", 16, "features.1.0.block.3"),
])
def test_preset_se_on_inverted_residuals(name, count, first):
    net = getattr(models, name)()
    report = insert(net, "eca", preset="se", example_input=X[:1])
    assert len(report) == count and report[0] == first
    assert net.eval()(X).shape == (2, 1000)


def test_convnext_needs_a_selector():
    net = models.convnext_tiny()
    with pytest.raises(SurgeryError, match="does not recognise the architecture of ConvNeXt"):
        insert(net, "se", preset="se", example_input=X[:1])
    report = insert(net, "eca", after="features.*.*.block", example_input=X[:1])
    assert len(report) == 18 and report[0] == "features.1.0.block.7"
    assert net.eval()(X).shape == (2, 1000)


@pytest.mark.parametrize("block", ["dynamic_conv", "cond_conv"])
def test_dynamic_convs_on_mobilenet_v2(block):
    net = models.mobilenet_v2(num_classes=10)
    n_convs = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    report = replace(net, target=nn.Conv2d, block=block, example_input=X[:1])
    assert len(report) == n_convs
    dw = net.features[1].conv[0][0]
    assert dw.groups == dw.in_channels == 32
    train_steps(net, X)


def test_ghost_conv_on_1x1s_and_eca_for_squeeze_excitation():
    net = models.resnet18()
    report = replace(net, target=lambda n, m: isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1),
                     block="ghost_conv", example_input=X[:1])
    assert report == ["layer2.0.downsample.0", "layer3.0.downsample.0", "layer4.0.downsample.0"]
    assert type(net.layer2[0].downsample[1]) is nn.Identity
    net = models.mobilenet_v3_small()
    report = replace(net, target=torchvision.ops.SqueezeExcitation, block="eca", example_input=X[:1])
    assert len(report) == 9 and net.eval()(X).shape == (2, 1000)


def test_acnet_refuses_a_1x1_and_leaves_the_model_alone():
    net = models.resnet18()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(SurgeryError, match=r"'acnet_block' cannot take the geometry of 'layer2.0.downsample.0'"):
        replace(net, target=nn.Conv2d, block="acnet_block", example_input=X[:1])
    after = net.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items())
    assert all(type(m) is not vb.surgery.RepSlot for m in net.modules())


@pytest.mark.parametrize("block", ["cbam", "coord_attention", "triplet_attention"])
def test_create_feature_extractor_on_a_network_with_blocks(block):
    # torchvision's FX-based feature extraction traces through the network; each block is one call_module leaf
    from torchvision.models.feature_extraction import create_feature_extractor
    torch.manual_seed(0)
    net = models.resnet18().eval()
    insert(net, block, preset="se")
    fe = create_feature_extractor(net, return_nodes={"layer2": "c3", "layer4": "c5"})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = fe(x)
        ref = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2)(x)
        assert torch.equal(out["c3"], ref)
        assert torch.equal(out["c5"], net.layer4(net.layer3(ref)))
    block_cls = vb.block_info(block).cls
    called = [n.target for n in fe.graph.nodes if n.op == "call_module"
              and isinstance(fe.get_submodule(n.target), block_cls)]
    assert called, "each block is one call_module node of the extractor's graph"


def test_readme_quick_start_runs_as_written():
    """README's first code block, run as a reader would (torchvision for its plug-in lines), all but the two lines
    that name a reader's own checkpoint or repository; no warning (a replace that would not fold back warns)."""
    import os
    import re
    import warnings
    text = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    code = re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)
    lines = [ln for ln in code.splitlines() if "/path/or/url" not in ln and "<owner>" not in ln]
    assert len(lines) == len(code.splitlines()) - 2, "README's placeholders changed: update this test"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        namespace: dict = {}
        exec(compile("\n".join(lines), "README.md", "exec"), namespace)
    assert sum(type(m).__name__ == "ACBlock" for m in namespace["acnet_net"].modules()) == 8
    assert sum(type(m).__name__ == "CBAM" for m in namespace["tv_resnet"].modules()) == 8


def test_a_whole_detector_is_edited_though_its_number_of_boxes_changes():
    """Any new weight changes how many boxes a detector keeps: the check after the edit refused it by chance
    ("the model's output changed from ... (92, 4) ... to (93, 4)")."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn
    torch.manual_seed(0)
    net = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=3, min_size=128,
                                                max_size=128)
    images = [torch.rand(3, 128, 128), torch.rand(3, 128, 128)]
    before = [len(d["boxes"]) for d in net.eval()(images)]
    for block in ("eca", "cbam"):
        vb.insert(net, block, after="backbone.body.16", example_input=(images,))
    after = [len(d["boxes"]) for d in net(images)]
    assert after != before and net.get_submodule("backbone.body.16.block").channels == 960
