"""Plain reference formulas shared by the tests (independent of the library's code)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.models.resnet import Bottleneck
from visionblocks.reparam import is_reparameterizable
from visionblocks.testing import randomize_bn_stats, randomize_params


def run_at_once(fn, n: int = 4) -> tuple[list, list]:
    """Call ``fn()`` from ``n`` threads released together; ``(results, exceptions)`` in completion order."""
    import threading
    barrier, results, errors = threading.Barrier(n), [], []

    def call():
        barrier.wait()
        try:
            results.append(fn())
        except Exception as e:  # noqa: BLE001 - collected for the caller's assertion
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def bn_eval(x: torch.Tensor, bn) -> torch.Tensor:
    """Eval-mode BatchNorm written out over dim 1: ``gamma (x - mean) / sqrt(var + eps) + beta``."""
    sh = (1, -1) + (1,) * (x.ndim - 2)
    return (x - bn.running_mean.view(sh)) / torch.sqrt(bn.running_var.view(sh) + bn.eps) * bn.weight.view(sh) \
        + bn.bias.view(sh)


def _randomize(m, seed=0, scale=0.3):
    """Random parameters everywhere (zero-initialised gates included) and random BN statistics, eval mode."""
    randomize_params(m, scale, seed)
    randomize_bn_stats(m, seed=seed + 1)
    return m.eval()


def _cna(x, unit, stride=1, padding=None, dilation=1, groups=1, act=True):
    conv = unit.conv
    pad = conv.padding if padding is None else padding
    y = F.conv2d(x, conv.weight, conv.bias, conv.stride, pad, conv.dilation, conv.groups)
    y = bn_eval(y, unit.bn) if isinstance(unit.bn, torch.nn.BatchNorm2d) else y
    return torch.relu(y) if act else y


def _meta(name):
    with torch.device("meta"):
        return vb.create_model(name)


def _bottlenecks(model):
    return [m for m in model.modules() if isinstance(m, Bottleneck)]


def _rand_params(m, seed=0, scale=0.3):
    randomize_params(m, scale, seed)
    return m


def _build(name, *args, **kwargs):
    m = vb.create_block(name, *args, **kwargs)
    _rand_params(m)
    randomize_bn_stats(m, seed=1)
    return m.double().eval()


def _meta_attention_spatial_models(name, **kw):
    with torch.device("meta"):
        return vb.create_model(name, **kw).eval()


def _prep(m, seed=0):
    randomize_params(m, 0.3, seed)
    randomize_bn_stats(m, seed=seed + 1)
    return m.double().eval()


D = torch.float64


def _block(name, *args, **kwargs):
    torch.manual_seed(0)
    m = vb.create_block(name, *args, **kwargs).double().eval()
    with torch.no_grad():  # no parameter left at a special initial value (zeros, ones)
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return m


def _softmax_rows(a):
    e = torch.exp(a - a.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def _mha_reference(x, wq, wk, wv, h, bq=None, bk=None, bv=None):
    """Explicit per-head softmax(Q K^T / sqrt(d)) V, concatenated: (B, N, C)."""
    B, N, C = x.shape
    d = C // h
    q = x @ wq.T + (0 if bq is None else bq)
    k = x @ wk.T + (0 if bk is None else bk)
    v = x @ wv.T + (0 if bv is None else bv)
    out = torch.zeros(B, N, C, dtype=x.dtype)
    for b in range(B):
        for i in range(h):
            sl = slice(i * d, (i + 1) * d)
            a = _softmax_rows(q[b, :, sl] @ k[b, :, sl].T / math.sqrt(d))
            out[b, :, sl] = a @ v[b, :, sl]
    return out


def _layer_norm(x, weight, bias, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * weight + bias


def _global_filter_reference(x, K):
    """Explicit DFTs: X = F_H x F_W (ortho, half spectrum), Z = K X, inverse DFT over H, then the real inverse
    (Hermitian) transform over W, written as the cosine/sine sums."""
    B, C, H, W = x.shape
    Wf = W // 2 + 1
    n_h, n_w = torch.arange(H, dtype=D), torch.arange(W, dtype=D)
    FH = torch.exp(-2j * math.pi * torch.outer(n_h, n_h) / H) / math.sqrt(H)
    FW = torch.exp(-2j * math.pi * torch.outer(n_w, torch.arange(Wf, dtype=D)) / W) / math.sqrt(W)
    X = torch.einsum("uh,bchw,wv->bcuv", FH, x.to(torch.complex128), FW)
    Z = X * K
    Z1 = torch.einsum("hu,bcuv->bchv", FH.conj(), Z)                  # inverse DFT along H
    y = torch.zeros(B, C, H, W, dtype=D)
    for n in range(W):
        acc = Z1[..., 0].real.clone()
        for v in range(1, Wf):
            term = (Z1[..., v] * torch.exp(torch.tensor(2j * math.pi * v * n / W, dtype=torch.complex128))).real
            acc += term if (W % 2 == 0 and v == W // 2) else 2 * term
        y[..., n] = acc / math.sqrt(W)
    return y


@pytest.fixture
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _randomize_attention_window(m, seed=0):
    randomize_params(m, 0.3, seed)
    randomize_bn_stats(m, seed)
    return m.double().eval()


def _w(conv):
    """A 1x1 conv's (out, in) matrix and bias (zeros when it has none)."""
    w = conv.weight[:, :, 0, 0]
    return w, (conv.bias if conv.bias is not None else torch.zeros(w.shape[0]))


def _pixel_groups(H, W, ph, pw):
    """For each pixel position p inside a patch, the in-image pixels (one per patch) that form its sequence."""
    return [[(r, c) for r in range(py, H, ph) for c in range(px, W, pw)] for py in range(ph) for px in range(pw)]


def _expert_sum(m, x, r):
    y = 0
    for k in range(m.weight.shape[0]):
        bias = m.bias[k] if m.bias is not None else None
        y = y + r[:, k].view(-1, 1, 1, 1) * F.conv2d(x, m.weight[k], bias, m.stride, m.padding, m.dilation, m.groups)
    return y


def pool(x, r):
    h, w = x.shape[-2:]
    out = x.new_zeros(*x.shape[:2], math.ceil(h / r), math.ceil(w / r))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * r:(i + 1) * r, j * r:(j + 1) * r].mean((2, 3))
    return out


def _meta_conv_variant_models(name, **kw):
    with torch.device("meta"):
        return vb.create_model(name, **kw)


def _perturb(m, scale=0.2, seed=0):
    randomize_params(m, scale, seed, add=True)
    return m


def _ln(x, weight, bias, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * weight + bias


def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _perturb_mlp_models(m, scale=0.1, seed=0):
    randomize_params(m, scale, seed, add=True)
    return m


def _random(m: nn.Module, seed: int = 0) -> nn.Module:
    randomize_params(m, 0.2, seed, add=True)
    return randomize_bn_stats(m, seed=seed + 1).eval()


def _rep_blocks() -> list[str]:
    return [n for n in vb.list_blocks() if is_reparameterizable(vb.block_info(n).cls)]


def _rep_models() -> list[str]:
    names = []
    for n in vb.list_models():
        try:
            with torch.device("meta"):
                m = vb.create_model(n)
        except Exception:  # a model that cannot be built on the meta device: build it for real
            try:
                m = vb.create_model(n)
            except Exception:  # a broken constructor fails its own contract tests; nothing to fold here
                continue
        if any(is_reparameterizable(x) for x in m.modules()):
            names.append(n)
    return names


def _meta_reparam_models(name, **kw):
    with torch.device("meta"):
        return vb.create_model(name, **kw)


def assert_inference_path_equals_autograd_path(name: str, *args, input_shape: tuple[int, ...], **kwargs) -> None:
    """A gate that takes other kernels without autograd (amax instead of max with indices, halving-tree maxima,
    gates multiplied in place) gives the values of its autograd path, and leaves the caller's input untouched:
    block ``name(*args, **kwargs)`` in float64 with random parameters, on a random ``input_shape`` input."""
    torch.manual_seed(0)
    m = vb.create_block(name, *args, **kwargs).double().eval()
    for p in m.parameters():
        p.data.normal_()
    x = torch.randn(*input_shape, dtype=torch.float64)
    x0 = x.clone()
    with torch.no_grad():
        y_inference = m(x)
    assert torch.equal(x, x0), f"{name}: the inference path wrote into its input"
    y_autograd = m(x.clone().requires_grad_(True))
    assert y_autograd.requires_grad
    torch.testing.assert_close(y_inference, y_autograd.detach(), rtol=1e-12, atol=1e-14)
