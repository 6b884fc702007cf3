"""visionblocks in timm: timm_attn as timm's attn_layer; insert/replace on timm models (integration tier)."""
import pytest

timm = pytest.importorskip("timm")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from _integration_docs import run_example  # noqa: E402

import visionblocks as vb  # noqa: E402
from visionblocks.integrations.timm import timm_attn  # noqa: E402
from visionblocks.surgery import SurgeryError, insert, replace  # noqa: E402

X = torch.randn(2, 3, 64, 64)


def test_doc_example_attn_layer_is_the_se_preset(monkeypatch):
    ns = run_example("timm", monkeypatch)
    net, same = ns["net"], ns["same"]
    assert type(net.layer1[0].se).__name__ == "CBAM"
    same.load_state_dict(net.state_dict())
    assert torch.equal(same.eval()(X), net.eval()(X))


def test_timm_attn_takes_timms_keywords():
    attn = timm_attn("eca")
    gate = attn(64, device="cpu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in gate.parameters())
    gate = timm_attn("se", reduction=8)(64, act_layer=nn.SiLU)  # what timm's EfficientNet passes its se_layer
    assert gate.fc1.out_channels == 8
    with pytest.raises(TypeError, match=r"timm passed rd_ratio=0.25 to 'eca', which does not take it"):
        timm_attn("eca")(64, rd_ratio=0.25)
    with pytest.raises(SurgeryError, match="layout 'nlc'"):
        timm_attn("self_attention")
    assert repr(timm_attn("cbam", reduction=8)) == "timm_attn('cbam', reduction=8)"


def test_attn_layer_in_resnext_and_basic_blocks():
    net = timm.create_model("resnet18", block_args={"attn_layer": timm_attn("coord_attention")})
    assert type(net.layer2[1].se).__name__ == "CoordAttention"
    assert net.eval()(X).shape == (2, 1000)


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2_100"])
def test_replace_on_timm_resnet_folds_back(name):
    # mobilenetv2_100: its convolutions feed timm's BatchNormAct2d (BN + activation), which stays and takes the
    # folded bias in its running mean
    net = timm.create_model(name)
    keys = list(net.state_dict())
    report = replace(net, target=lambda n, m: isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3),
                     block="diverse_branch_block", example_input=X[:1])
    assert len(report) == {"resnet18": 16, "mobilenetv2_100": 18}[name]
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss = net(X).logsumexp(1).mean()
    loss.backward()
    opt.step()
    net.eval()
    trained = net(X)
    vb.reparameterize(net)
    plain = timm.create_model(name)
    plain.load_state_dict(net.state_dict())
    assert list(plain.state_dict()) == keys
    torch.testing.assert_close(plain.eval()(X), trained, rtol=1e-4, atol=1e-4 * trained.abs().max().item())


@pytest.mark.parametrize("name,count,first", [("efficientnet_b0", 16, "blocks.0.0.bn2.block"),
                                              ("mobilenetv3_small_100", 11, "blocks.0.0.bn2.block")])
def test_preset_se_on_timm_inverted_residuals(name, count, first):
    net = timm.create_model(name)
    report = insert(net, "eca", preset="se", example_input=X[:1])
    assert len(report) == count and report[0] == first
    assert net.eval()(X).shape == (2, 1000)


def test_preset_stage_end_and_existing_attention_on_timm():
    report = insert(timm.create_model("resnet18"), "bam", preset="stage-end", example_input=X[:1])
    assert report == ["layer1.2", "layer2.2", "layer3.2"]
    net = timm.create_model("seresnet50")
    report = insert(net, "eca", preset="se", example_input=X[:1])
    assert report[0] == "layer1.0.se.block" and type(net.layer1[0].se.module).__name__ == "SEModule"


def test_timm_fx_feature_extraction_with_a_block_inserted():
    # timm's FX feature extraction traces the network; the inserted blocks are leaves
    from timm.models._features_fx import create_feature_extractor
    torch.manual_seed(0)
    m = timm.create_model("resnet18").eval()
    vb.insert(m, "cbam", preset="se")
    fe = create_feature_extractor(m, return_nodes={"layer2": "c3", "layer4": "c5"})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fe(x)["c5"], m.forward_features(x))


# ours : timm, the same architecture
PAIRS = {"resnet50": "resnet50", "mobilenetv2": "mobilenetv2_100", "efficientnet_b0": "efficientnet_b0",
         "repvgg_a0": "repvgg_a0", "mobilevit_s": "mobilevit_s", "mixer_s16": "mixer_s16_224",
         "resmlp_12": "resmlp_12_224", "gmlp_s16": "gmlp_s16_224", "volo_d1": "volo_d1_224",
         "ghostnet_100": "ghostnet_100"}


@pytest.mark.parametrize("ours", ["resnet50", "mobilenetv2", "efficientnet_b0", "repvgg_a0", "mobilevit_s",
                                  "mixer_s16", "resmlp_12", "gmlp_s16"])
def test_layer_decay_groups_as_timms(ours):
    """timm's layer-wise learning-rate decay reads group_matcher: our network gets as many learning-rate scales
    as timm's of the same architecture (it fell back to timm's guess before group_matcher existed)."""
    from timm.optim._param_groups import param_groups_layer_decay
    with torch.device("meta"):
        a, b = vb.create_model(ours), timm.create_model(PAIRS[ours])
    scales = [sorted({round(g["lr_scale"], 9) for g in param_groups_layer_decay(m, layer_decay=0.75)})
              for m in (a, b)]
    assert len(scales[0]) == len(scales[1]), f"{ours}: {len(scales[0])} learning-rate scales, timm {len(scales[1])}"


@pytest.mark.parametrize("ours", sorted(PAIRS))
def test_pruned_network_forward_as_timms(ours):
    """prune_intermediate_layers to the second feature (head kept or not) then forward: the unpooled map (or
    tokens) with num_features = that feature's channels -- or, for the isotropic networks with the head kept, the
    logits -- like timm's network of the same architecture (ours raised ValueError on the head's width, or
    pooled)."""
    size = 64 if ours not in ("mixer_s16", "resmlp_12", "gmlp_s16", "volo_d1") else 224
    x = torch.randn(1, 3, size, size)
    for prune_head in (True, False):
        torch.manual_seed(0)
        a, b = vb.create_model(ours).eval(), timm.create_model(PAIRS[ours]).eval()
        a.prune_intermediate_layers([1], prune_head=prune_head)
        b.prune_intermediate_layers([1], prune_head=prune_head)
        with torch.no_grad():
            ya, yb = a(x), b(x)
        assert (a.num_features, a.num_classes) == (b.num_features, b.num_classes)
        assert ya.shape == yb.shape or (ya.numel() == yb.numel() and a.num_features in ya.shape), \
            (tuple(ya.shape), tuple(yb.shape))


def test_timms_channels_last_stages_are_refused_clearly():
    """Swin stages and ConvNeXt blocks with conv_mlp=False pass (B, H, W, C) maps: insert built SE(16) for a
    (2, 16, 16, 96) Swin stage output and gated its rows, silently; CBAM(16) for ConvNeXt's 40 channels."""
    x = torch.randn(2, 3, 64, 64)
    swin = timm.create_model("swin_tiny_patch4_window7_224", img_size=64, window_size=4, num_classes=5)
    with pytest.raises(SurgeryError, match=r"'layers.0' is \(2, 16, 16, 96\), channels last"):
        insert(swin, "se", after="layers.0", example_input=x)
    convnext = timm.create_model("convnext_atto", conv_mlp=False, num_classes=5)
    with pytest.raises(SurgeryError, match=r"channels last.*LayerNorm over 40 features"):
        insert(convnext, "cbam", after="stages.0.blocks.0.norm", example_input=x)
    rep = insert(convnext, "cbam", after="stages.0.blocks.0", example_input=x)   # a block's output: NCHW
    assert convnext.get_submodule(rep[0]).channels == 40
