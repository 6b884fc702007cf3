"""The model contract, parametrized over every registered model: a newly registered model is covered
without writing a new test.  The checks themselves live in ``visionblocks.testing``."""
import pytest

import visionblocks as vb
from visionblocks import testing as T

MODELS = vb.list_models()
FAST = ["forward_backward", "inputs", "paper_counts"]


@pytest.mark.parametrize("check", FAST)
@pytest.mark.parametrize("name", MODELS)
def test_model_contract(name, check):
    T.MODEL_CHECKS[check](name)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_model_compile_export(name):
    T.check_model_compile_export(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_model_export_dynamic(name):
    T.check_model_export_dynamic(name)


def test_every_model_check_is_run():
    """Every model check runs somewhere: the fast and slow ones here, the backbone ones in test_contract_backbone."""
    assert set(T.MODEL_CHECKS) == set(FAST) | {"compile_export", "export_dynamic"} | set(T.BACKBONE_CHECKS) | {"features_compile_export"}
