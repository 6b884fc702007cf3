"""Graph convolution (Kipf & Welling, Semi-Supervised Classification with Graph Convolutional Networks,
ICLR 2017, arXiv 1609.02907).

``H' = act(D~^{-1/2} (A + I) D~^{-1/2} H W + b)`` with ``D~_ii = sum_j (A + I)_ij``: the first-order
Chebyshev filter with the paper's renormalisation trick (symmetric normalisation; note that the authors'
PyTorch port pygcn row-normalises instead).  Layout ``special``: node features (B, N, C) and an adjacency
(N, N) shared by the batch or (B, N, N), dense or ``torch.sparse_coo`` (weighted adjacencies allowed); the
output is (B, N, out_features).  The dense path compiles and exports; the sparse path
(``torch.sparse.mm``/``torch.bmm``) is eager only.  The paper's layer is linear, its model applies ReLU
and dropout between layers: ``act_layer`` is ``None`` by default.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from visionblocks.layers import LayerType, check_nlc, check_positive_int, create_act
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["GraphConv", "normalize_adjacency"]


def normalize_adjacency(adj: torch.Tensor, add_self_loops: bool = True) -> torch.Tensor:
    """``D~^{-1/2} (A + I) D~^{-1/2}`` of a dense or sparse (N, N) or (B, N, N) adjacency (a node of zero
    degree, possible only without self-loops, gets zero rows and columns)."""
    n = adj.shape[-1]
    if adj.is_sparse:
        a = adj.coalesce()
        idx, val = a.indices(), a.values()
        if add_self_loops:
            diag = torch.arange(n, device=adj.device)
            lead = [torch.arange(s, device=adj.device).repeat_interleave(n) for s in adj.shape[:-2]]
            loops = torch.stack(lead + [diag.repeat(max(1, adj.numel() // (n * n)))] * 2)
            idx = torch.cat([idx, loops], 1)
            val = torch.cat([val, val.new_ones(loops.shape[1])])
        batch = idx[0] if adj.ndim == 3 else torch.zeros_like(idx[0])
        rows, cols = batch * n + idx[-2], batch * n + idx[-1]
        deg = val.new_zeros(adj.numel() // n).index_add_(0, rows, val)
        dinv = torch.where(deg > 0, deg.clamp_min(1e-30).rsqrt(), torch.zeros_like(deg))
        return torch.sparse_coo_tensor(idx, val * dinv[rows] * dinv[cols], adj.shape).coalesce()
    dinv = _dense_inv_sqrt_degree(adj, add_self_loops)
    out = dinv.unsqueeze(-1) * adj * dinv.unsqueeze(-2)
    if add_self_loops:  # + D~^{-1/2} I D~^{-1/2} on the diagonal, in place (no (N, N) eye, nothing saved is changed)
        out.diagonal(dim1=-2, dim2=-1).add_(dinv * dinv)
    return out


def _dense_inv_sqrt_degree(adj: torch.Tensor, add_self_loops: bool) -> torch.Tensor:
    """``D~^{-1/2}`` of a dense (..., N, N) adjacency as (..., N): ``d~_i = sum_j A_ij (+ 1 for the self-loop)``,
    0 where the degree is 0 (no (N, N) temporary)."""
    deg = adj.sum(-1)
    if add_self_loops:
        deg = deg + 1
    return torch.where(deg > 0, deg.clamp_min(1e-30).rsqrt(), torch.zeros_like(deg))


def _example_inputs(in_features: int):
    def make_inputs(batch=None, size=None, bad=None, generator=None):
        b = 2 if batch is None else batch
        n = 12 if size is None else int(size[0]) * int(size[1])
        c = in_features + (1 if bad == "channels" else 0)
        x = torch.randn(b, n, c, generator=generator, dtype=torch.float64)
        upper = (torch.rand(b, n, n, generator=generator, dtype=torch.float64) < min(0.5, 4.0 / n)).triu(1)
        adj = (upper | upper.transpose(1, 2)).to(torch.float64)
        return (x[0] if bad == "rank" else x, adj)
    return make_inputs


def _example_shapes(out_features: int):
    return lambda inputs: (inputs[0].shape[0], inputs[0].shape[1], out_features)


@register_block("graph_conv", family="conv", layout="special",
                paper="Kipf & Welling, Semi-Supervised Classification with Graph Convolutional Networks, ICLR 2017",
                url="https://arxiv.org/abs/1609.02907",
                example=Example(args=(16, 32), make_inputs=_example_inputs(16), output_shapes=_example_shapes(32)))
@validated()
class GraphConv(nn.Module):
    """GCN layer ``act(A_hat X W + b)`` with ``A_hat = D~^{-1/2}(A + I)D~^{-1/2}``.

    Args:
        in_features, out_features: node feature sizes.
        bias: add b after the propagation (paper: yes).
        add_self_loops: use ``A + I`` (the renormalisation trick; paper: yes).
        normalize: apply the symmetric normalisation (``False``: the adjacency is used as given, e.g.
            already normalised once for a multi-layer model with :func:`normalize_adjacency`).
        act_layer: activation of the layer output (``None``; the paper's model uses ReLU between layers).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, add_self_loops: bool = True,
                 normalize: bool = True, act_layer: LayerType = None):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.add_self_loops, self.normalize = add_self_loops, normalize
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.act = create_act(act_layer)
        bound = math.sqrt(6.0 / (in_features + out_features))  # Glorot uniform, as in the paper's code
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        check_nlc(x, self.in_features, name)
        n = x.shape[1]
        if not isinstance(adj, torch.Tensor) or adj.ndim not in (2, 3) or tuple(adj.shape[-2:]) != (n, n) \
                or (adj.ndim == 3 and adj.shape[0] != x.shape[0]):
            raise ValueError(f"{name} expects an adjacency of shape ({n}, {n}) or ({x.shape[0]}, {n}, {n}) for "
                             f"features {tuple(x.shape)}, got {tuple(adj.shape) if isinstance(adj, torch.Tensor) else adj}")
        h = x @ self.weight
        if self.normalize and not adj.is_sparse:
            # D~^{-1/2} (A + I) D~^{-1/2} h = d * (A (d * h) + d * h), d = D~^{-1/2} as a column: O(N C) memory
            # besides the given A (the normalised (N, N) or (B, N, N) matrix is never formed)
            d = _dense_inv_sqrt_degree(adj, self.add_self_loops).unsqueeze(-1)
            hs = d * h
            out = adj @ hs
            out = d * (out + hs if self.add_self_loops else out)
        else:
            a = normalize_adjacency(adj, self.add_self_loops) if self.normalize else adj
            if a.is_sparse:
                if a.ndim == 3:
                    out = torch.bmm(a, h)
                else:
                    b, _, c = h.shape
                    out = torch.sparse.mm(a, h.transpose(0, 1).reshape(n, b * c)).reshape(n, b, c).transpose(0, 1)
            else:
                out = a @ h
        if self.bias is not None:
            out = out + self.bias
        return self.act(out)
