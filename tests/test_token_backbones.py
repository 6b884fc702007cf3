"""The backbone API of the token, hybrid and MLP models (CoAtNet, MobileViT, Mixer/ResMLP/gMLP, GFNet, ResT, sMLPNet,
ViP, VOLO) beyond the model contract: each model's feature table, features that are the model's own maps (tokens
reshaped, not recomputed), VOLO's two heads, the stochastic-depth ramps and the data configurations."""
import pytest
import torch

import visionblocks as vb
from visionblocks.models.gfnet import GFNet
from visionblocks.models.mlp_mixer import IsotropicMLP
from visionblocks.models.rest import ResT
from visionblocks.models.volo import VOLO
from visionblocks.blocks.mlp import MixerBlock

# name: (channels, reductions) of feature_info
TABLE = {
    "coatnet_0": ([64, 96, 192, 384, 768], [2, 4, 8, 16, 32]),
    "mobilevit_xxs": ([16, 24, 48, 64, 80], [2, 4, 8, 16, 32]),
    "mobilevit_s": ([32, 64, 96, 128, 160], [2, 4, 8, 16, 32]),
    "mobilevitv2_050": ([32, 64, 128, 192, 256], [2, 4, 8, 16, 32]),
    "mixer_s16": ([512] * 8, [16] * 8),
    "resmlp_12": ([384] * 12, [16] * 12),
    "gmlp_ti16": ([128] * 30, [16] * 30),
    "gfnet_ti": ([256] * 12, [16] * 12),
    "gfnet_s": ([384] * 19, [16] * 19),
    "rest_lite": ([64, 128, 256, 512], [4, 8, 16, 32]),
    "rest_base": ([96, 192, 384, 768], [4, 8, 16, 32]),
    "smlpnet_t": ([80, 160, 320, 640], [4, 8, 16, 32]),
    "vip_s7": ([192, 384, 384, 384], [7, 14, 14, 14]),
    "volo_d1": ([192, 384, 384, 384], [8, 16, 16, 16]),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_feature_table(name):
    with torch.device("meta"):
        m = vb.create_model(name)
    chs, red = TABLE[name]
    assert m.feature_info.channels() == chs and m.feature_info.reduction() == red
    assert len(m.feature_plan) == len(chs)
    for e, plan in zip(m.feature_info, m.feature_plan):
        assert e["module"] == [s for s in plan if not callable(getattr(type(m), s, None))][-1]


def _tiny_mixer(**kw):
    return IsotropicMLP(lambda d, n, drop_path: MixerBlock(d, n, 0.5, 2.0, drop_path=drop_path), 16, 3, 8,
                        img_size=32, num_classes=5, **kw)


def test_isotropic_features_are_the_blocks_tokens():
    torch.manual_seed(0)
    m = _tiny_mixer().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        final, feats = m.forward_intermediates(x)
        t = m.stem(x).flatten(2).transpose(1, 2)
        for i, blk in enumerate(m.blocks):
            t = blk(t)
            torch.testing.assert_close(feats[i], t.transpose(1, 2).reshape(2, 16, 4, 4), rtol=0, atol=0)
        torch.testing.assert_close(final, m.norm(t), rtol=0, atol=0)
        normed = m.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)[0]
        torch.testing.assert_close(normed, m.norm(t).transpose(1, 2).reshape(2, 16, 4, 4), rtol=0, atol=0)
        assert m(x).shape == (2, 5)
        m.reset_classifier(0)
        torch.testing.assert_close(m(x), final.mean(1), rtol=0, atol=0)
    with pytest.raises(ValueError, match="input size"):
        m.forward_intermediates(torch.randn(1, 3, 48, 48))


def test_isotropic_drop_path_ramp():
    m = _tiny_mixer(drop_path_rate=0.2)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in m.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2])


def test_gfnet_features_and_pooling():
    torch.manual_seed(0)
    m = GFNet(embed_dim=16, depth=2, num_classes=4).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        final, feats = m.forward_intermediates(x)
        assert final.shape == (2, 4, 3, 16) and [f.shape for f in feats] == [(2, 16, 4, 3)] * 2
        torch.testing.assert_close(feats[-1].permute(0, 2, 3, 1), m.blocks(m.add_position(m.patch_embed(x))))
        m.reset_classifier(0, global_pool="max")
        torch.testing.assert_close(m(x), final.amax((1, 2)))


def test_rest_last_feature_and_final_norm():
    torch.manual_seed(0)
    m = ResT(embed_dims=(8, 16, 16, 16), num_heads=(1, 2, 2, 2), depths=(1, 1, 1, 1), num_classes=5).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        final, feats = m.forward_intermediates(x)
        tokens, H, W = m.stages[-1].forward_tokens(feats[2])
        ref = m.norm(tokens).transpose(1, 2).reshape(1, 16, H, W)
        torch.testing.assert_close(final, ref, rtol=0, atol=0)
        assert [f.shape[-2:] for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def _tiny_volo(**kw):
    return VOLO(layers=(1, 1, 2, 1), embed_dims=(16, 24, 24, 24), num_heads=(2, 3, 3, 3), stem_hidden=8, pos_size=2,
                **kw)


def test_volo_features_heads_and_reset():
    torch.manual_seed(0)
    m = _tiny_volo(num_classes=6).eval()
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        final, feats = m.forward_intermediates(x)
        assert [tuple(f.shape) for f in feats] == [(2, 16, 4, 6), (2, 24, 2, 3), (2, 24, 2, 3), (2, 24, 2, 3)]
        assert final.shape == (2, 1 + 6, 24) and m.feature_plan[2] == ["blocks.1", "blocks.2"]
        normed = m.forward_intermediates(x, indices=[3], norm=True, intermediates_only=True)[0]
        torch.testing.assert_close(normed, m.norm(feats[3].permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        logits = m(x)
        torch.testing.assert_close(logits, m.head(final[:, 0]) + 0.5 * m.aux_head(final[:, 1:]).amax(1))
        assert m.get_classifier() is m.head and m.num_classes == 6
        m.reset_classifier(3, global_pool="avg")
        assert m.head.out_features == m.aux_head.out_features == 3 and m.num_classes == 3
        torch.testing.assert_close(m.forward_head(final, pre_logits=True), final[:, 1:].mean(1))
        m.reset_classifier(0, global_pool="token")
        torch.testing.assert_close(m(x), final[:, 0] + 0.5 * final[:, 1:].amax(1))
    with pytest.raises(ValueError, match="global_pool"):
        m.reset_classifier(3, global_pool="max")
    with pytest.raises(ValueError, match="num_classes"):
        m.reset_classifier(-1)


def test_volo_pruned_backbone_drops_the_class_blocks():
    torch.manual_seed(0)
    m = _tiny_volo(num_classes=6).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = m.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
        m.prune_intermediate_layers([0, 1], prune_norm=True)
        got = m.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    gone = ("post.", "norm.", "blocks.1.", "blocks.2.", "blocks.3.", "head.", "aux_head.")
    assert not any(n.startswith(gone) for n, _ in m.named_parameters())


def test_mobilevit_drop_path_ramp():
    m = vb.create_model("mobilevit_xxs", drop_path_rate=0.1)
    mv2 = [b for s in m.stages for b in s if hasattr(b, "has_skip")]
    assert len(mv2) == 7  # 1 + 3 + one per MobileViT stage
    transformer = [s[1] for s in m.stages[2:]]
    rates = [layer.drop_path.drop_prob for blk in transformer for layer in blk.layers]
    assert rates == pytest.approx([0.1 * 5 / 9] * 2 + [0.1 * 7 / 9] * 4 + [0.1] * 3)
    skip_rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in mv2 if b.has_skip]
    assert skip_rates == pytest.approx([0.0, 0.1 * 2 / 9, 0.1 * 3 / 9])   # stage 1's block, stage 2's stride-1 ones


@pytest.mark.parametrize("name,cfg", [
    ("mixer_s16", dict(crop_pct=0.875, interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3)),
    ("resmlp_12", dict(crop_pct=0.875, interpolation="bicubic", mean=(0.485, 0.456, 0.406))),
    ("gmlp_s16", dict(crop_pct=0.875, interpolation="bicubic")),
    ("volo_d1", dict(crop_pct=0.96, interpolation="bicubic")),
    ("vip_s7", dict(crop_pct=0.9, interpolation="bicubic")),
    ("mobilevit_s", dict(crop_pct=0.9, interpolation="bicubic", mean=(0.0,) * 3, std=(1.0,) * 3)),
    ("mobilevitv2_100", dict(crop_pct=0.888, mean=(0.0,) * 3, std=(1.0,) * 3)),
    ("gfnet_xs", dict(crop_pct=0.875, interpolation="bicubic")),
    ("rest_small", dict(interpolation="bicubic")),
    ("smlpnet_t", dict(interpolation="bicubic")),
    ("coatnet_0", dict(interpolation="bicubic")),
])
def test_data_config(name, cfg):
    dc = vb.resolve_data_config(name)
    assert {k: dc[k] for k in cfg} == cfg


def test_isotropic_norm_applies_to_every_feature_as_timm():
    """forward_intermediates(norm=True) normalises every block's tokens with the final norm (timm's Mixer, ResMLP,
    gMLP); pruned to an earlier block the norm stays (it fits) and forward returns its normalised tokens."""
    torch.manual_seed(0)
    m = _tiny_mixer().eval()
    with torch.no_grad():
        m.norm.weight.uniform_(0.5, 2.0)  # not the identity
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        t, want = m.stem(x).flatten(2).transpose(1, 2), []
        for blk in m.blocks:
            t = blk(t)
            want.append(m.norm(t).transpose(1, 2).reshape(2, 16, 4, 4))
        got = m.forward_intermediates(x, norm=True, intermediates_only=True)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=0, atol=0)
        m.prune_intermediate_layers([1])
        assert m.num_classes == 0 and m.num_features == 16
        torch.testing.assert_close(m(x).transpose(1, 2).reshape(2, 16, 4, 4), want[1], rtol=0, atol=0)


def test_volo_norm_applies_to_the_transformer_stages_and_prunes_to_the_outlookers():
    """VOLO (as timm's): the final norm normalises the 384-wide transformer features, not the outlookers' 192-wide
    map; pruned to the outlookers' map the norm, the class token, its blocks and the position embedding go and
    forward returns the map's tokens (it raised AttributeError and left the network half-pruned)."""
    torch.manual_seed(0)
    m = vb.create_model("volo_d1", num_classes=5).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        raw = m.forward_intermediates(x, intermediates_only=True)
        normed = m.forward_intermediates(x, norm=True, intermediates_only=True)
        torch.testing.assert_close(normed[0], raw[0], rtol=0, atol=0)
        for i in (1, 2, 3):
            want = m.norm(raw[i].permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            torch.testing.assert_close(normed[i], want, rtol=0, atol=0)
        m.prune_intermediate_layers([0])
        assert m.pos_embed is None and m.cls_token is None and isinstance(m.norm, torch.nn.Identity)
        assert m.num_features == 192 and m.num_classes == 0
        torch.testing.assert_close(m(x), raw[0].flatten(2).transpose(1, 2), rtol=0, atol=0)
        m.reset_classifier(3)
        assert m(x).shape == (1, 3)
