"""The block contract, parametrized over every registered block: a newly registered block is covered
without writing a new test.  The checks themselves live in ``visionblocks.testing``."""
import pytest

import visionblocks as vb
from visionblocks import testing as T

BLOCKS = vb.list_blocks()
FAST = ["forward", "other_sizes", "backward", "dtypes", "channels_last", "compile", "export", "bad_input",
        "state_dict"]


@pytest.mark.parametrize("check", FAST)
@pytest.mark.parametrize("name", BLOCKS)
def test_block_contract(name, check):
    T.BLOCK_CHECKS[check](name)


@pytest.mark.slow
@pytest.mark.parametrize("name", BLOCKS)
def test_block_onnx(name):
    T.check_onnx(name)


def test_every_block_check_is_run():
    assert set(T.BLOCK_CHECKS) == set(FAST) | {"onnx"}


@pytest.mark.parametrize("name", BLOCKS)
def test_block_registry_entry(name):
    info = vb.block_info(name)
    assert info.family in vb.FAMILIES and info.layout in vb.LAYOUTS
    assert info.paper and info.url.startswith("http"), f"{name}: paper and url are required"
    T.check_onnx_reason(name)
    mod = __import__(info.cls.__module__, fromlist=["_"])
    assert mod.__doc__ and ("arxiv" in mod.__doc__.lower() or "http" in mod.__doc__), \
        f"{name}: its module docstring must name the paper and its link"
    assert info.cls.__doc__, f"{name}: the class needs a docstring"
