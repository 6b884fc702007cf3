"""Tests of :mod:`visionblocks.blocks.attention.csra`."""
import math

import pytest
import torch

import visionblocks as vb

from _reference import _build


def _csra_reference(x, m):
    B, C, H, W = x.shape
    out = torch.zeros(B, m.num_classes, dtype=torch.float64)
    for head in m.heads:
        w = head.classifier.weight[:, :, 0, 0]
        T = head.temperature
        for b in range(B):
            for k in range(m.num_classes):
                norm = math.sqrt(sum(float(t) ** 2 for t in w[k]))
                s = [float((w[k] * x[b, :, i, j]).sum()) / norm for i in range(H) for j in range(W)]
                base = sum(s) / len(s)
                if math.isinf(T):
                    att = max(s)
                else:
                    e = [math.exp(T * v) for v in s]
                    att = sum(v * ei for v, ei in zip(s, e)) / sum(e)
                out[b, k] += base + head.lam * att
    return out
@pytest.mark.parametrize("num_heads,lam", [(1, 0.1), (2, 0.3), (4, 0.5)])
def test_csra_logits_by_loops(num_heads, lam):
    m = _build("residual_attention", 6, 4, num_heads=num_heads, lam=lam)
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(m(x), _csra_reference(x, m), rtol=1e-10, atol=1e-12)
def test_csra_lambda_zero_is_average_pooling_of_normalised_classifier():
    m = _build("residual_attention", 6, 3, lam=0.0)
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64)
    w = m.heads[0].classifier.weight[:, :, 0, 0]
    torch.testing.assert_close(m(x), x.mean((2, 3)) @ (w / w.norm(dim=1, keepdim=True)).T)
def test_csra_validates():
    with pytest.raises(ValueError, match="num_heads"):
        vb.create_block("residual_attention", 8, 5, num_heads=3)
