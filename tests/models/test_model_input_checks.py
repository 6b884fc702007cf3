"""What every model refuses, parametrized over the registry: inputs of the wrong dtype (at every entry point),
inputs smaller than a patch, features of the wrong width in ``forward_head``; and the model-level arguments
(``attn_kwargs``, ``reset_classifier``, ``list_models``, bool flags) refused with a TypeError/ValueError that names
them.  The models are built on the meta device (no weight initialisation): shapes run through meta kernels, which
raise torch's shape errors as the CPU ones do; the dtype checks get uninitialised CPU storage (``to_empty``)."""
from __future__ import annotations

import copy
import functools

import pytest
import torch

import visionblocks as vb
from visionblocks.features import FeatureListNet
from visionblocks.testing import model_test_size

MODELS = vb.list_models()


@functools.lru_cache(maxsize=None)
def _meta_model(name: str) -> torch.nn.Module:
    """``create_model(name, num_classes=4)`` on the meta device, in eval mode (shared: tests that change it copy it)."""
    with torch.device("meta"):
        return vb.create_model(name, num_classes=4).eval()


def _hollow(name: str) -> torch.nn.Module:
    """The model with uninitialised CPU weights: for checks that fire before compute."""
    return copy.deepcopy(_meta_model(name)).to_empty(device="cpu")


def _entry_points(m: torch.nn.Module):
    """The ways into a model: forward, forward_features, forward_intermediates, then the features_only wrapper
    (last: wrapping prunes the model)."""
    yield "forward", m
    yield "forward_features", m.forward_features
    yield "forward_intermediates", m.forward_intermediates
    yield "features_only", FeatureListNet(m)


@pytest.mark.parametrize("name", MODELS)
def test_model_refuses_wrong_input_dtype(name):
    """An int tensor, and float64 into a float32 model: a TypeError naming the dtypes, at every entry point (as
    blocks do), never torch's 'expected scalar type ...' from the first convolution."""
    m = _hollow(name)
    size = model_test_size(vb.model_info(name))
    ints = torch.randint(0, 255, (1, 3, *size))
    doubles = torch.randn(1, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        for where, fn in _entry_points(m):
            with pytest.raises(TypeError, match=r"floating-point input, got dtype torch\.int64"):
                fn(ints)
            with pytest.raises(TypeError, match=r"torch\.float32 weights and got a torch\.float64 input"):
                fn(doubles)


def test_model_dtype_rule_leaves_autocast_alone():
    """bfloat16 into a float32 model is refused eagerly, and mixed dtypes under torch.autocast are autocast's
    business (as for blocks)."""
    m = vb.create_model("mobilenetv2", num_classes=5).eval()
    x = torch.randn(1, 3, 32, 32, dtype=torch.bfloat16)
    with torch.no_grad():
        with pytest.raises(TypeError, match="MobileNetV2 holds torch.float32 weights and got a torch.bfloat16"):
            m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert m(x).shape == (1, 5)


@pytest.mark.parametrize("name", MODELS)
def test_model_tiny_input_runs_or_value_error(name):
    """At 1x1 and 3x5 (eval, batch 1) a model either runs or raises a ValueError (a fixed-size model, or one
    whose patch is larger): never a RuntimeError from inside torch."""
    m = _meta_model(name)
    for size in ((1, 1), (3, 5)):
        try:
            with torch.no_grad():
                out = m(torch.randn(1, 3, *size, device="meta"))
        except ValueError as e:
            assert f"(1, 3, {size[0]}, {size[1]})" in str(e), f"{name}: the error should name the input shape: {e}"
        else:
            assert out.shape == (1, 4), f"{name}: at {size} the logits have shape {tuple(out.shape)}"


@pytest.mark.parametrize("name, cls, smallest", [("convmixer_768_32", "ConvMixer", 7), ("gfnet_ti", "GFNet", 16),
                                                 ("volo_d1", "VOLO", 15)])
def test_patch_models_name_their_minimum_size(name, cls, smallest):
    """A patch-embedding model refuses an input smaller than one patch with a ValueError naming the model, the
    smallest size and the input; at exactly that size it runs (also through features_only)."""
    m = vb.create_model(name, num_classes=3).eval()
    with torch.no_grad():
        for size in ((3, 5), (smallest - 1, 40), (40, smallest - 1)):
            with pytest.raises(ValueError, match=rf"{cls} needs an input of at least {smallest}x{smallest}") as e:
                m(torch.randn(1, 3, *size))
            assert f"(1, 3, {size[0]}, {size[1]})" in str(e.value)
        assert m(torch.randn(1, 3, smallest, smallest)).shape == (1, 3)
        with pytest.raises(ValueError, match=f"at least {smallest}x{smallest}"):
            m.forward_intermediates(torch.randn(1, 3, 3, 5))


@pytest.mark.parametrize("name", MODELS)
def test_forward_head_refuses_wrong_feature_width(name):
    """forward_head on features of the wrong width (with and without pre_logits): a ValueError naming the width
    it expects and the shape received, not a matmul error (nor, with pre_logits, wrong features returned)."""
    m = _meta_model(name)
    with torch.no_grad():
        for pre_logits in (False, True):
            with pytest.raises(ValueError, match=r"forward_head expects features .* with C = \d+") as e:
                m.forward_head(torch.randn(2, 10, device="meta"), pre_logits=pre_logits)
            assert "(2, 10)" in str(e.value)


def test_forward_head_names_num_features():
    m = _hollow("resnet18")
    with torch.no_grad():
        for x in (torch.randn(2, 10), torch.randn(2, 7, 2, 2)):
            with pytest.raises(ValueError, match=r"C = 512 \(num_features\), got shape") as e:
                m.forward_head(x, pre_logits=True)
            assert str(tuple(x.shape)) in str(e.value)
        assert m.forward_head(torch.randn(2, 512, 2, 2), pre_logits=True).shape == (2, 512)


@pytest.mark.parametrize("name, kwargs, message", [
    ("resnet18", {"attn_kwargs": {"reduction": 8}}, "attn_kwargs given without attn"),
    ("resnet18", {"stage_attn_kwargs": {"reduction": 8}}, "stage_attn_kwargs given without stage_attn"),
    ("mobilenetv2", {"attn_kwargs": {"reduction": 8}}, "attn_kwargs given without attn"),
    ("repvgg_a0", {"attn_kwargs": {"reduction": 8}}, "attn_kwargs given without attn_layer"),
])
def test_attn_kwargs_without_attn_is_refused(name, kwargs, message):
    """attn_kwargs without an attention would be silently ignored: a ValueError instead."""
    with torch.device("meta"), pytest.raises(ValueError, match=message):
        vb.create_model(name, **kwargs)


@pytest.mark.parametrize("name, kwargs", [("resnet18", {"attn": "se", "attn_kwargs": 8}),
                                          ("resnet18", {"stage_attn": "se", "stage_attn_kwargs": [8]}),
                                          ("mobilenetv2", {"attn": "se", "attn_kwargs": 8})])
def test_attn_kwargs_must_be_a_dict(name, kwargs):
    arg = next(k for k in kwargs if k.endswith("_kwargs"))
    with torch.device("meta"), pytest.raises(TypeError, match=rf"{arg} must be a dict, got "):
        vb.create_model(name, **kwargs)


@pytest.mark.parametrize("name", ["resnet18", "volo_d1", "ghostnet_100"])
def test_reset_classifier_wrong_type_is_type_error(name):
    """A wrong type for num_classes is a TypeError (as create_model(num_classes="10")); a negative count stays a
    ValueError."""
    with torch.device("meta"):
        m = vb.create_model(name)
        for bad in ("5", 5.0, True):
            with pytest.raises(TypeError, match=rf"num_classes must be an int, got {type(bad).__name__}"):
                m.reset_classifier(bad)
        with pytest.raises(ValueError, match="num_classes"):
            m.reset_classifier(-1)
        m.reset_classifier(5)
    assert m.num_classes == 5


def test_list_models_pattern_must_be_a_str():
    for bad in (5, ["resnet*"]):
        with pytest.raises(TypeError, match=rf"pattern must be a str .* got {type(bad).__name__}"):
            vb.list_models(bad)
    assert "resnet18" in vb.list_models("resnet*")


def test_bool_flags_refuse_non_bools():
    with torch.device("meta"):
        m = vb.create_model("resnet18")
        for bad in ("yes", 1, None):
            with pytest.raises(TypeError, match=rf"enable must be a bool, got {type(bad).__name__}"):
                m.set_grad_checkpointing(bad)
            with pytest.raises(TypeError, match=rf"features_only must be a bool, got {type(bad).__name__}"):
                vb.create_model("resnet18", features_only=bad)
        m.set_grad_checkpointing(True)
        assert m.grad_checkpointing
