"""The authors' layouts of the token / attention / other models (visionblocks/weights/authors_token.py): what the
manifests alone do not show (the equivalence itself is proven by tools/weights_harness.py against their code)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.weights import ArchitectureMismatchError, load_checkpoint
from visionblocks.blocks.mlp import SparseMLPBlock
from visionblocks.weights.authors_token import convert_smlpnet
from visionblocks.weights.manifest import manifest_state_dict


def _random_state_dict(name: str, prefix: str = "", seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in the shapes of a manifest's source layout (the keys starting with ``prefix``)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in manifest_state_dict(name).items():
        if not k.startswith(prefix):
            continue
        if k.endswith("num_batches_tracked"):
            out[k] = torch.zeros((), dtype=torch.int64)
        elif k.endswith("running_var"):
            out[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(v.shape, generator=g) * 0.1
    return out


def test_smlp_swapped_axes_follow_the_authors_forward():
    """The authors' sMLP block, restated from their code: ``proj_h`` is a 1x1 conv over ``x.permute(0, 3, 1, 2)``
    (W on the channel axis: it mixes along W), ``proh_w`` one over ``x.permute(0, 2, 1, 3)`` (mixes along H),
    then ``fuse(cat[x, x_h, x_w])``.  After conversion our block must compute exactly that."""
    p = "token_mix.0.1."
    sd = _random_state_dict("authors.smlpnet--smlpnet_t", prefix=p)
    with torch.device("meta"):
        model = vb.create_model("smlpnet_t")
    ours = convert_smlpnet(sd, model)
    block = SparseMLPBlock(80, (56, 56)).eval()
    block.load_state_dict({k[len("features.1.smlp."):]: v for k, v in ours.items()}, strict=True)
    x = torch.randn(1, 80, 56, 56, generator=torch.Generator().manual_seed(1))
    y = F.gelu(F.batch_norm(x, sd[p + "BN.running_mean"], sd[p + "BN.running_var"], sd[p + "BN.weight"],
                            sd[p + "BN.bias"], eps=1e-5))
    along_w = torch.einsum("vw,bchw->bchv", sd[p + "proj_h.weight"][:, :, 0, 0], y) + sd[p + "proj_h.bias"]
    along_h = torch.einsum("gh,bchw->bcgw", sd[p + "proh_w.weight"][:, :, 0, 0], y) + sd[p + "proh_w.bias"][:, None]
    expected = F.conv2d(torch.cat([y, along_w, along_h], 1), sd[p + "fuse.weight"])
    with torch.no_grad():
        got = block(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the swap is not a no-op: reading their names literally gives another block
    literal = F.conv2d(torch.cat([y, along_h, along_w], 1), sd[p + "fuse.weight"])
    assert (got - literal).abs().max() > 1e-2


@pytest.mark.parametrize("manifest, model_stem, want", [("authors.rest--rest_lite-basicstem", "conv7x7", "'basic'"),
                                                       ("authors.rest--rest_lite", "basic", "'conv7x7'")])
def test_rest_checkpoint_of_the_other_stem_is_refused_naming_the_option(manifest, model_stem, want):
    """Their repository's BasicStem (three 3x3 convs) and their Stem (the paper's 7x7) load only into the model
    built with the same ``stem=``; the other is refused before anything is copied, naming the option."""
    sd = dict(manifest_state_dict(manifest))
    with torch.device("meta"):
        model = vb.create_model("rest_lite", stem=model_stem)
    with pytest.raises(ArchitectureMismatchError, match=f"stem={want}"):
        load_checkpoint(model, sd)


def test_rest_basic_stem_is_the_authors_three_convolutions():
    """``stem="basic"``: conv3x3/2-BN-ReLU (C0/2), conv3x3-BN-ReLU, conv3x3/2 without bias or norm, then PA; the
    output is checked against those operations applied by hand to its own parameters."""
    torch.manual_seed(0)
    m = vb.create_model("rest_lite", stem="basic").double().eval()
    e = m.stages[0].embed
    assert [tuple(c.weight.shape) for c in (e[0].conv, e[1].conv, e[2])] == [(32, 3, 3, 3), (32, 32, 3, 3), (64, 32, 3, 3)]
    assert e[2].bias is None
    x = torch.randn(1, 3, 32, 36, dtype=torch.float64)

    def cbr(c, t, stride):
        t = torch.nn.functional.conv2d(t, c.conv.weight, None, stride, 1)
        return torch.relu(torch.nn.functional.batch_norm(t, c.bn.running_mean, c.bn.running_var, c.bn.weight,
                                                         c.bn.bias, False, 0.0, c.bn.eps))
    want = torch.nn.functional.conv2d(cbr(e[1], cbr(e[0], x, 2), 1), e[2].weight, None, 2, 1)
    with torch.no_grad():
        torch.testing.assert_close(e(x), want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="stem must be one of"):
        vb.create_model("rest_lite", stem="7x7")


@pytest.mark.parametrize("name, model", [("authors.cotnet--cotnet50", "cotnet50"),
                                         ("authors.rednet--rednet26", "rednet26")])
def test_resnet_family_layouts_are_not_taken_for_another(name, model):
    """CoTNet's and RedNet's checkpoints are ResNet-shaped: each is recognised as its own layout, and refused by a
    plain ResNet-50 (a checkpoint of another model) rather than partially loaded."""
    sd = manifest_state_dict(name)
    with torch.device("meta"):
        other = vb.create_model("resnet50", stride_3x3=True)
    with pytest.raises(Exception) as e:
        load_checkpoint(other, sd)
    assert "missing" in str(e.value) or "layout" in str(e.value)


def test_parnet_checkpoint_of_other_widths_is_refused_naming_them():
    """The authors' ParNet-S has 92 stream-1 channels (ours 96): a checkpoint whose widths differ from the model's
    is refused naming the widths that build it (here ParNet-M's into ParNet-L)."""
    sd = manifest_state_dict("authors.parnet--parnet_m")
    with torch.device("meta"):
        model = vb.create_model("parnet_l")
    with pytest.raises(ArchitectureMismatchError, match=r"widths \(128, 256, 512\)") as e:
        load_checkpoint(model, sd)
    assert e.value.options == {"widths": (128, 256, 512)}
