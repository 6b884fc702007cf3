"""Tests of :mod:`visionblocks.blocks.attention.sge`."""
import pytest
import torch

import visionblocks as vb

from _reference import _randomize


D = torch.float64


@pytest.mark.parametrize("unbiased", [False, True])
def test_sge_gates_by_hand(unbiased):
    G = 8
    m = _randomize(vb.create_block("sge", 32, groups=G, unbiased=unbiased), scale=1.0).double()
    x = torch.randn(2, 32, 6, 5, dtype=D)
    ref = torch.empty_like(x)
    cg = 32 // G
    for b in range(2):
        for g in range(G):
            xg = x[b, g * cg:(g + 1) * cg].flatten(1)                               # (C/G, m)
            gvec = xg.mean(1)                                                        # global feature g
            c = gvec @ xg                                                            # c_i = g . x_i
            n = c.numel() - 1 if unbiased else c.numel()                           # 1/(m-1) or the paper's 1/m
            mu, sigma = c.mean(), torch.sqrt(((c - c.mean()) ** 2).sum() / n)
            a = m.weight.flatten()[g] * (c - mu) / (sigma + 1e-5) + m.bias.flatten()[g]
            ref[b, g * cg:(g + 1) * cg] = (xg * torch.sigmoid(a)).reshape(cg, 6, 5)
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    one_by_one = vb.create_block("sge", 128, unbiased=unbiased).eval()
    if unbiased:   # 1/(m - 1) has no value on a single position: refused by name, not a NaN
        with pytest.raises(ValueError, match="unbiased"):
            one_by_one(torch.randn(1, 128, 1, 1))
    else:
        assert torch.isfinite(one_by_one(torch.randn(1, 128, 1, 1))).all()
    assert one_by_one(torch.randn(0, 128, 3, 3)).shape == (0, 128, 3, 3)


def test_sge_unbiased_option_differs_and_threads_to_the_model():
    x = torch.randn(2, 64, 5, 5, dtype=D)
    a = _randomize(vb.create_block("sge", 64, groups=8), scale=1.0).double()
    b = _randomize(vb.create_block("sge", 64, groups=8, unbiased=True), scale=1.0).double()
    assert (a(x) - b(x)).abs().max() > 1e-6                   # the two settings are different functions
    with pytest.raises(TypeError):
        vb.create_block("sge", 64, unbiased="yes")
    model = vb.create_model("sge_resnet50", attn_kwargs={"unbiased": True})
    sges = [mod for mod in model.modules() if type(mod).__name__ == "SpatialGroupEnhance"]
    assert len(sges) == 16 and all(mod.unbiased for mod in sges)
