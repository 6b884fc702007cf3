"""Tests of :mod:`visionblocks.blocks.conv.graph_conv`."""
import math

import pytest
import torch

import visionblocks as vb


D = torch.float64
def _graph(n, p=0.3, seed=0, weighted=False):
    g = torch.Generator().manual_seed(seed)
    upper = (torch.rand(n, n, generator=g, dtype=D) < p).triu(1).to(D)
    if weighted:
        upper = upper * (torch.rand(n, n, generator=g, dtype=D) + 0.5)
    return upper + upper.T
def per_node_reference(m, x, adj):
    """h'_i = sum_{j in N(i) + i} A~_ij / sqrt(d~_i d~_j) x_j W + b, with A~ = A + I, d~_i = sum_j A~_ij."""
    b, n, _ = x.shape
    out = torch.zeros(b, n, m.out_features, dtype=x.dtype)
    for bi in range(b):
        a = adj[bi] if adj.ndim == 3 else adj
        deg = [1.0 + float(a[i].sum()) for i in range(n)]
        for i in range(n):
            acc = x[bi, i] / deg[i]  # the self-loop term
            for j in range(n):
                if a[i, j] != 0:
                    acc = acc + a[i, j] * x[bi, j] / math.sqrt(deg[i] * deg[j])
            out[bi, i] = acc @ m.weight + m.bias
    return out
@pytest.mark.parametrize("weighted", [False, True])
def test_gcn_matches_per_node_loop_dense_and_sparse(weighted):
    m = vb.create_block("graph_conv", 5, 4).double()
    with torch.no_grad():
        m.bias.normal_()
    x = torch.randn(2, 9, 5, dtype=D)
    adj = _graph(9, weighted=weighted)
    ref = per_node_reference(m, x, adj)
    torch.testing.assert_close(m(x, adj), ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(m(x, adj.to_sparse()), ref, rtol=1e-10, atol=1e-10)
    batched = torch.stack([adj, _graph(9, seed=3, weighted=weighted)])
    ref_b = per_node_reference(m, x, batched)
    torch.testing.assert_close(m(x, batched), ref_b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(m(x, batched.to_sparse()), ref_b, rtol=1e-10, atol=1e-10)
def test_gcn_permutation_equivariance_and_isolated_node():
    m = vb.create_block("graph_conv", 5, 4, act_layer="relu").double()
    x = torch.randn(1, 8, 5, dtype=D)
    adj = _graph(8, seed=1)
    adj[7, :] = 0
    adj[:, 7] = 0  # node 7 is isolated: it keeps only its own (self-loop) term
    perm = torch.randperm(8)
    p = torch.eye(8, dtype=D)[perm]
    y = m(x, adj)
    torch.testing.assert_close(m(x[:, perm], p @ adj @ p.T), y[:, perm], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(y[0, 7], torch.relu(x[0, 7] @ m.weight + m.bias), rtol=1e-10, atol=1e-10)
def test_gcn_symmetric_not_row_normalization_and_options():
    from visionblocks.blocks.conv.graph_conv import normalize_adjacency
    adj = _graph(6, seed=2)
    a_hat = normalize_adjacency(adj)
    torch.testing.assert_close(a_hat, a_hat.T, rtol=0, atol=1e-14)  # symmetric (row normalisation is not)
    ev = torch.linalg.eigvalsh(a_hat)
    assert ev.max() <= 1 + 1e-12 and ev.min() > -1 - 1e-12  # spectrum in (-1, 1] (renormalisation trick)
    m = vb.create_block("graph_conv", 3, 2, normalize=False, bias=False).double()
    x = torch.randn(2, 6, 3, dtype=D)
    torch.testing.assert_close(m(x, a_hat), a_hat @ x @ m.weight, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(2, 6, 3\)"):
        m(x, torch.ones(5, 5, dtype=D))
@pytest.mark.parametrize("batched", [False, True])
def test_gcn_dense_eval_memory_is_o_n_c(batched):
    """D~^{-1/2}(A + I)D~^{-1/2} h is computed as d * (A (d h) + d h): besides the given adjacency, an eval call
    keeps only (B, N, C)-sized activations (h = X W, d h, A d h, the sum, the scaled sum, + bias: bound 8 of
    them) and (B, N) degrees, never an (N, N) or (B, N, N) copy of the adjacency (formerly three)."""
    from visionblocks.testing import peak_memory
    b, n, c = 2, 128, 8
    m = vb.create_block("graph_conv", c, c).eval()
    x = torch.randn(b, n, c)
    adj = _graph(n, p=0.05).float()
    if batched:
        adj = torch.stack([adj, _graph(n, p=0.05, seed=1).float()])
    with torch.no_grad():
        peak = peak_memory(lambda: m(x, adj))
    bound = (8 * b * n * c + 4 * b * n) * x.element_size()
    assert peak < bound, (peak, bound)
