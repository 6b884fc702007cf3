"""The model contract, parametrized over every registered model."""
import pytest
import torch

import visionblocks as vb
from visionblocks import testing as T

MODELS = vb.list_models()


def _input(info, batch=2, size=None, in_chans=None):
    size = size or T.model_test_size(info)
    return torch.randn(batch, in_chans or info.input_size[0], *size)


@pytest.mark.parametrize("name", MODELS)
def test_model_forward_backward(name):
    info = vb.model_info(name)
    m = vb.create_model(name, num_classes=10, in_chans=1).train()
    x = _input(info, in_chans=1)
    feats = m.forward_features(x)
    out = m.forward_head(feats)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: {n} has no finite gradient"
    m.eval()
    with torch.no_grad():
        assert torch.allclose(m(x), m.forward_head(m.forward_features(x)), atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_model_second_size_and_bad_input(name):
    info = vb.model_info(name)
    m = vb.create_model(name, num_classes=7).eval()
    h, w = T.model_test_size(info)
    if info.test_input_size is not None:  # the model works at sizes other than its default
        h, w = h + 32, w + 32
    with torch.no_grad():
        assert m(torch.randn(1, 3, h, w)).shape == (1, 7)
    with pytest.raises((ValueError, TypeError), match=r"\(1, 4, "):
        m(torch.randn(1, 4, h, w))


@pytest.mark.parametrize("name", MODELS)
def test_model_params_and_macs_match_paper(name):
    """Parameters within 1% of the paper's count; MACs within 1% (or the paper's rounding)."""
    info = vb.model_info(name)
    params, macs = T.count_macs(name)
    if info.paper_params is not None:
        assert abs(params / 1e6 - info.paper_params) <= 0.01 * info.paper_params, \
            f"{name}: {params / 1e6:.3f} M params, paper {info.paper_params} M"
    if info.paper_macs is not None:
        decimals = len(repr(float(info.paper_macs)).split(".")[1])
        tol = max(info.macs_rel_tol * info.paper_macs, 0.5 * 10 ** -decimals)
        assert abs(macs / 1e9 - info.paper_macs) <= tol, f"{name}: {macs / 1e9:.3f} GMACs, paper {info.paper_macs}"


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_model_compile_export(name):
    import torch._dynamo
    info = vb.model_info(name)
    m = vb.create_model(name, num_classes=10).eval()
    x = _input(info, batch=1)
    with torch.no_grad():
        ref = m(x)
        torch._dynamo.reset()
        got = torch.compile(m, fullgraph=True, backend="eager")(x)
        assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4)
        ep = torch.export.export(m, (x,))
        assert torch.allclose(ep.module()(x), ref, atol=1e-4, rtol=1e-4)
