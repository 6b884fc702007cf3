"""Issue 17: every argument validated where it enters, every edge input answered right or refused clearly.

The cases the issue lists, each as a test; the registry-wide property test is tests/test_property_blocks.py.
"""
from __future__ import annotations

import os
import traceback

import pytest
import torch

import visionblocks
from visionblocks import create_block
from visionblocks.layers import LayerNorm2d, blocks_with_pooled_bn, check_arg
from visionblocks.registry import block_info, list_blocks

_PKG = os.path.dirname(os.path.abspath(visionblocks.__file__))


def _raises_ours(exc, fn, *words):
    with pytest.raises(exc) as ei:
        fn()
    frames = traceback.extract_tb(ei.value.__traceback__)
    assert os.path.abspath(frames[-1].filename).startswith(_PKG + os.sep), f"raised inside {frames[-1].filename}"
    for w in words:
        assert w in str(ei.value), f"{w!r} not in {str(ei.value)!r}"
    return ei.value


# ------------------------------------------------------------------------------------ silent wrong answers
def test_aft_conv_kernel_1_refused_not_nan():
    _raises_ours(ValueError, lambda: create_block("aft_conv", 64, kernel_size=1), "kernel_size", "1")


@pytest.mark.parametrize("name,args,kw", [("mobilevit_attention", (48,), {"transformer_dim": 64}),
                                          ("mobilevitv2_attention", (64,), {"transformer_dim": 32})])
@pytest.mark.parametrize("k", [4, 0, 2])
def test_mobilevit_even_or_zero_kernel_refused(name, args, kw, k):
    _raises_ours(ValueError, lambda: create_block(name, *args, kernel_size=k, **kw), "kernel_size", str(k))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
@pytest.mark.parametrize("name", ["global_filter", "se", "cbam"])
def test_non_floating_input_is_a_type_error_naming_the_dtype(name, dtype):
    info = block_info(name)
    m = info.build_example().eval()
    x = torch.ones(info.example.input_shape, dtype=dtype)
    _raises_ours(TypeError, lambda: m(x), str(dtype))


def test_float64_input_into_float32_module_names_both_dtypes():
    m = create_block("se", 64).eval()
    _raises_ours(TypeError, lambda: m(torch.randn(2, 64, 8, 8, dtype=torch.float64)), "float32", "float64")
    out = m.double()(torch.randn(2, 64, 8, 8, dtype=torch.float64))     # same dtype: fine
    assert out.dtype == torch.float64


def test_autocast_mixed_dtypes_still_work():
    m = create_block("se", 64).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(torch.randn(2, 64, 8, 8, dtype=torch.bfloat16))
    assert out.shape == (2, 64, 8, 8)


def test_parameter_free_dtype_rule_is_floating_only():
    from visionblocks.layers.validate import check_input_dtype
    m = torch.nn.Identity()
    check_input_dtype(m, torch.randn(2, dtype=torch.float64), "id")
    with pytest.raises(TypeError, match="int64"):
        check_input_dtype(m, torch.ones(2, dtype=torch.int64), "id")


def test_dtype_guard_reads_the_first_floating_parameter_in_parameters_order():
    from visionblocks.layers.validate import _first_float_parameter
    for name in list_blocks():
        m = block_info(name).build_example()
        want = next((p for p in m.parameters() if p.is_floating_point()), None)
        assert _first_float_parameter(m) is want, name
    m = create_block("se", 64)
    m.fc1.weight = None  # a removed parameter is skipped, as parameters() skips it
    assert _first_float_parameter(m) is m.fc1.bias


def test_dtype_guard_exemptions_apply_on_a_mismatch_only():
    from visionblocks.layers.validate import check_input_dtype
    m = create_block("se", 64)
    check_input_dtype(m, torch.empty(2, 64, 4, 4, dtype=torch.float64, device="meta"), "se")  # shape-only run
    with pytest.raises(TypeError, match="int64"):  # but the input must be floating even there
        check_input_dtype(m, torch.empty(2, 64, 4, 4, dtype=torch.int64, device="meta"), "se")
    with pytest.raises(TypeError, match="float64"):
        check_input_dtype(m, torch.empty(2, 64, 4, 4, dtype=torch.float64), "se")
    m.double()  # the guard follows .to()/.double()
    check_input_dtype(m, torch.empty(2, 64, 4, 4, dtype=torch.float64), "se")


# ------------------------------------------------------------------------------------ contract inputs
def test_emsa_1x1_map_in_eval_and_rest_lite_sized_inputs():
    m = create_block("emsa", 64, num_heads=4, sr_ratio=2).eval()
    out = m(torch.randn(2, 64, 1, 1))
    assert out.shape == (2, 64, 1, 1) and torch.isfinite(out).all()
    m.train()
    out = m(torch.randn(2, 64, 1, 1))
    out.sum().backward()


def test_emsa_unchanged_above_1x1():
    torch.manual_seed(0)
    m = create_block("emsa", 64, num_heads=4, sr_ratio=2).eval().double()
    x = torch.randn(2, 64, 6, 5, dtype=torch.float64)
    q, k, v = torch.randn(3, 2, 4, 7, 16, dtype=torch.float64).unbind(0)
    attn = (q * m.scale).transpose(0, 1) @ k.permute(1, 0, 3, 2)
    mixed = torch.addmm(m.transform_conv.bias[:, None], m.transform_conv.weight.flatten(1),
                        attn.reshape(4, -1)).view(attn.shape)
    ref = (torch.nn.functional.instance_norm(mixed.softmax(-1), eps=1e-5) @ v.transpose(0, 1)).transpose(0, 1)
    torch.testing.assert_close(m.transformed_attention(q, k, v), ref, rtol=0, atol=0)
    assert m(x).shape == x.shape


@pytest.mark.parametrize("name", ["cond_conv", "dynamic_conv", "global_filter", "repmlp_block"])
def test_empty_batch(name):
    info = block_info(name)
    m = info.build_example().eval()
    shape = (0,) + tuple(info.example.input_shape[1:])
    out = m(torch.randn(shape))
    assert out.shape[0] == 0
    m.train()
    out = m(torch.randn(shape, requires_grad=True))
    out.sum().backward()


def test_pooled_bn_list_from_registry():
    assert blocks_with_pooled_bn() == ["bam", "cot", "repvgg_sse_block", "selective_kernel_conv",
                                       "split_attention_conv"]


def test_readme_lists_the_pooled_bn_blocks_of_the_registry():
    import re
    with open(os.path.join(os.path.dirname(_PKG), "README.md")) as f:
        text = " ".join(f.read().split())
    m = re.search(r"blocks_with_pooled_bn\(\)`: ([a-z0-9_, ]+)\)", text)
    assert m, "README no longer lists the blocks with BatchNorm on pooled features"
    assert [n.strip() for n in m.group(1).split(",")] == blocks_with_pooled_bn()


@pytest.mark.parametrize("name", ["bam", "cot", "selective_kernel_conv", "split_attention_conv", "repvgg_sse_block"])
def test_batch_1_training_refused_by_name_works_in_eval(name):
    info = block_info(name)
    m = info.build_example()
    x = torch.randn((1,) + tuple(info.example.input_shape[1:]))
    err = _raises_ours(ValueError, lambda: m.train()(x), type(m).__name__, "batch", "BatchNorm")
    assert "eval" in str(err)
    assert m.eval()(x).shape[0] == 1


def test_batch_1_training_other_bn_at_1x1_named():
    m = create_block("self_calibrated_conv", 64, 64, 3, pooling_r=4).train()
    _raises_ours(ValueError, lambda: m(torch.randn(1, 64, 3, 3)), "SelfCalibratedConv", "batch")
    assert m(torch.randn(1, 64, 16, 16)).shape == (1, 64, 16, 16)    # a map that does not pool to 1x1: fine


def test_batch_1_training_blocks_without_pooled_bn():
    for name in list_blocks():
        info = block_info(name)
        if name in blocks_with_pooled_bn() or info.layout == "special":
            continue
        torch.manual_seed(0)
        m = info.build_example().train()
        x = torch.randn((1,) + tuple(info.example.input_shape[1:]))
        assert m(x).shape[0] == 1, name


# ------------------------------------------------------------------------------------ constructor arguments
@pytest.mark.parametrize("name,args", [("bam", (64,)), ("coord_attention", (64,)), ("danet", (64,)),
                                       ("ghost_conv", (16, 32)), ("depthwise_separable_conv", (16, 32))])
@pytest.mark.parametrize("norm", ["layernorm", "ln", "LayerNorm", torch.nn.LayerNorm])
def test_layernorm_means_channels_first_in_nchw_blocks(name, args, norm):
    info = block_info(name)
    m = create_block(name, *args, norm_layer=norm).eval()
    assert any(isinstance(mod, LayerNorm2d) for mod in m.modules())
    x = torch.randn((2, args[0], 9, 7))
    assert m(x).shape[0] == 2
    assert info.layout in ("nchw", "conv")


@pytest.mark.parametrize("name,args", [("bam", (64,)), ("selective_kernel_conv", (64,)),
                                       ("split_attention_conv", (64, 64, 3))])
def test_instancenorm_on_pooled_maps_refused(name, args):
    _raises_ours(ValueError, lambda: create_block(name, *args, norm_layer="instancenorm"), "norm_layer",
                 "instancenorm")


def test_batchnorm1d_refused_in_nchw_blocks():
    _raises_ours(ValueError, lambda: create_block("ghost_conv", 16, 32, norm_layer="batchnorm1d"), "norm_layer")


@pytest.mark.parametrize("name,args,kw,arg", [
    ("vanilla_conv", (16, 32, 3), {"padding": -1}, "padding"),
    ("vanilla_conv", (16, 32, 3), {"padding": 2.5}, "padding"),
    ("vanilla_conv", (16, 32, 3), {"padding": "same"}, "padding"),
    ("group_conv", (16, 32, 3), {"padding": (1, -1)}, "padding"),
    ("do_conv", (32, 64, 3), {"stride": 0}, "stride"),
    ("do_conv", (32, 64, 0), {}, "kernel_size"),
    ("do_conv", (32, 64, 3), {"dilation": -1}, "dilation"),
    ("transposed_conv", (16, 8, 0), {}, "kernel_size"),
    ("transposed_conv", (16, 8, 4), {"stride": 0}, "stride"),
    ("transposed_conv", (16, 8, 4, 2), {"output_padding": -1}, "output_padding"),
    ("transposed_conv", (16, 8, 4, 2), {"dilation": 0}, "dilation"),
    ("self_attention", (64,), {"attn_drop": 1.5}, "attn_drop"),
    ("self_attention", (64,), {"attn_drop": -0.5}, "attn_drop"),
    ("self_attention", (64,), {"attn_drop": float("nan")}, "attn_drop"),
    ("self_attention", (64,), {"attn_drop": None}, "attn_drop"),
    ("coatnet_attention", (64,), {"proj_drop": 1.0}, "proj_drop"),
    ("external_attention", (64,), {"eps": None}, "eps"),
    ("external_attention", (64,), {"eps": -1e-9}, "eps"),
    ("gmlp_block", (32, 16), {"eps": 0.0}, "eps"),
    ("mbconv", (32, 48), {"drop_path": -0.5}, "drop_path"),
    ("mbconv", (32, 48), {"drop_path": float("nan")}, "drop_path"),
    ("cbam", (64,), {"kernel_size": -1}, "kernel_size"),
    ("cbam", (64,), {"kernel_size": "3"}, "kernel_size"),
    ("vanilla_conv", (16, 32, 3.0), {}, "kernel_size"),
    ("se", (64,), {"rd_channels": -1}, "rd_channels"),
    ("se", (64,), {"rd_channels": 0}, "rd_channels"),
    ("se", (64,), {"reduction": "16"}, "reduction"),
    ("eca", (64,), {"gamma": 0}, "gamma"),
    ("resmlp_block", (64, 16), {"mlp_ratio": -0.5}, "mlp_ratio"),
    ("resmlp_block", (64, 16), {"mlp_ratio": "4"}, "mlp_ratio"),
    ("gmlp_block", (32, 16), {"init_std": -0.5}, "init_std"),
    ("coconv", (32, 64, 3), {"dilations": 2}, "dilations"),
    ("mbconv", (32, 48), {"attn_layer": "nope"}, "attn_layer"),
    ("mbconv", (32, 48), {"act_layer": "nope"}, "act_layer"),
    ("muse", (64,), {"kernel_sizes": (3, 4)}, "kernel_sizes"),
    ("octave_conv", (64, 64, 3), {"alpha_in": 1.5}, "alpha_in"),
    ("se", (0,), {}, "channels"),
    ("se", (64.0,), {}, "channels"),
])
def test_bad_argument_refused_by_name(name, args, kw, arg):
    e = _raises_ours((ValueError, TypeError), lambda: create_block(name, *args, **kw), arg)
    value = kw.get(arg, None)
    if value is not None and not (isinstance(value, float) and value != value):
        assert repr(value) in str(e) or str(value) in str(e), str(e)


def test_mbconv_attn_layer_by_registry_name():
    m = create_block("mbconv", 32, 48, attn_layer="se").eval()
    assert m(torch.randn(2, 32, 8, 8)).shape == (2, 48, 8, 8)


def test_deprecated_names_still_validated():
    with pytest.warns(DeprecationWarning):
        create_block("split_attention_conv", 64, 64, 3, reduction_factor=4)
    with pytest.raises(TypeError, match=r"reduction_factor \(now reduction\)"):
        create_block("split_attention_conv", 64, 64, 3, reduction_factor="4")


def test_valid_arguments_build_the_same_module():
    torch.manual_seed(0)
    a = create_block("vanilla_conv", 16, 32, 3, padding=1)
    torch.manual_seed(0)
    b = torch.nn.Conv2d(16, 32, 3, padding=1)
    x = torch.randn(2, 16, 9, 9)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_check_arg_messages_name_value_and_allowed():
    with pytest.raises(ValueError, match=r"drop_path must be a number in \[0, 1\), got 1.5"):
        check_arg("drop_path", 1.5)
    with pytest.raises(TypeError, match=r"kernel_size must be .*got str \('3'\)"):
        check_arg("kernel_size", "3")
    assert check_arg("norm_layer", "ln") is LayerNorm2d


# ------------------------------------------------------------------------------------ registry lookup
def test_create_block_case_insensitive_and_suggestions():
    assert type(create_block("SE", 64)).__name__ == "SqueezeExcite"
    with pytest.raises(ValueError, match="did you mean: se"):
        create_block("sxe", 64)
    with pytest.raises(ValueError, match="se"):
        create_block("SEE", 64)


def test_compiling_many_block_classes_compiles_each():
    """Every validated block has a forward of its own code object: torch.compile caches at most
    ``recompile_limit`` (8) graphs per code object, so with one shared guard the ninth block class compiled in a
    process silently ran eagerly (no graph)."""
    from torch._dynamo.utils import counters

    import visionblocks.testing as T
    names = ["se", "eca", "cbam", "coord_attention", "sge", "shuffle_attention", "triplet_attention", "bam",
             "external_attention", "simplified_self_attention"]
    assert len(names) > torch._dynamo.config.recompile_limit
    torch._dynamo.reset()
    for name in names:
        info = T._info(name)
        m, x = T.build(info).eval(), T.make_inputs(info)
        before = counters["stats"]["unique_graphs"]
        with torch.no_grad():
            torch.compile(m, backend="eager")(*x)
        assert counters["stats"]["unique_graphs"] == before + 1, f"{name}: no graph compiled (ran eagerly)"
    assert len({id(T._info(n).cls.forward.__code__) for n in names}) == len(names)
