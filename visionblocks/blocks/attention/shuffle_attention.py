"""Shuffle Attention (Zhang & Yang, SA-Net: Shuffle Attention for Deep CNNs, ICASSP 2021, arXiv 2102.00240).

The C channels are split into G groups, each group into two halves of C/(2G) channels.  Channel half:
``X'_k1 = sigmoid(W1 s + b1) * X_k1`` with ``s = avgpool(X_k1)``.  Spatial half:
``X'_k2 = sigmoid(W2 GN(X_k2) + b2) * X_k2`` with a GroupNorm of C/(2G) groups (one channel per group, affine as
in the authors' code).  ``W1, b1, W2, b2`` are per-channel (C/(2G) each) and shared by all groups, so SA has
3C/G parameters.  The halves are concatenated, the groups aggregated back to C channels, and a channel shuffle
with 2 groups mixes the sub-features.  Paper default G = 64.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (
    channel_shuffle, check_divisible, check_nchw, check_positive_int, is_channels_last, is_plain, spatial_mean,
    transformed,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["ShuffleAttention"]


def _instance_norm_gate(x, a, k, e, eps: float, dim: int):
    """``(t, mu, rstd)``: the gate ``t = sigmoid(a (x - mu) rstd + k mu + e)`` with ``mu``, ``rstd`` the mean and
    ``1/sqrt(var + eps)`` (two-pass variance; means, not sums divided: a float16 sum over the positions overflows)
    of each (image, channel) over axis ``dim``, and per-channel ``a``, ``k``, ``e``: both halves of shuffle
    attention in one formula (spatial half: GroupNorm with one channel per group composed with (W2, b2), ``a = W2
    gamma``, ``k = 0``, ``e = W2 beta + b2``; channel half: ``a = 0``, ``k = W1``, ``e = b1``)."""
    mu = x.mean(dim, keepdim=True)
    d = x - mu
    d = d.square() if torch.is_grad_enabled() else d.square_()    # (in place when nothing records)
    rstd = torch.rsqrt(d.mean(dim, keepdim=True) + eps)
    del d  # (freed before the gate is allocated: the allocator reuses its memory)
    A = a * rstd
    return torch.addcmul(torch.addcmul(e, k, mu) - A * mu, x, A).sigmoid_(), mu, rstd


class _GatedInstanceNorm(torch.autograd.Function):
    """``y = x * t`` with :func:`_instance_norm_gate`'s gate ``t``.

    Its backward is written out: with ``u = dL/dz = gy x t (1 - t)`` (``t`` the gate), the input gradient is
    ``gy t + u A + c1 x + c0`` with per-(image, channel) ``A = a rstd`` and ``c1``, ``c0`` from the sums of ``u``
    and ``u x`` over the positions (the gradients through ``mu`` and ``var``): about 11 full-tensor passes where
    autograd's graph of the same forward takes about 20.  Used for channels-last maps under autograd (measured
    forward + backward, batch 8, 2 threads: 0.66-0.69 of autograd's graph of the channels-last form at 128x28x28,
    512x14x14, 256x56x56, 2048x7x7; NCHW maps keep GroupNorm's fused kernels, faster there).  A backward that is
    itself recorded (``create_graph=True``: gradient penalties; torch.func's ``vjp``/``jacrev``/``hessian``)
    recomputes the gate and statistics from the inputs and runs the same formula out of place, so that it is
    differentiable; ``jvp`` (forward mode: ``torch.func.jvp``, ``jacfwd``) is the formula's tangent.
    """

    generate_vmap_rule = True  # (forward + setup_context: torch.func's transforms can run it)

    @staticmethod
    def forward(x, a, k, e, eps: float, dim: int):
        t, mu, rstd = _instance_norm_gate(x, a, k, e, eps, dim)
        return x * t, t, mu, rstd   # (the gate and statistics: outputs for setup_context, not differentiable)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, a, k, e, eps, dim = inputs
        y, t, mu, rstd = output
        ctx.mark_non_differentiable(t, mu, rstd)
        ctx.set_materialize_grads(False)  # (no zero-filled gradients for those three outputs)
        ctx.save_for_backward(x, a, k, e, t, y, mu, rstd)
        ctx.save_for_forward(x, a, k, e, t, y, mu, rstd)
        ctx.eps, ctx.dim = eps, dim

    @staticmethod
    def backward(ctx, gy, *_):
        if gy is None:  # (gradients are not materialised: none reached y)
            return None, None, None, None, None, None
        x, a, k, e, t, y, mu, rstd = ctx.saved_tensors
        recorded = torch.is_grad_enabled()
        if recorded:  # the saved gate and statistics are not differentiable outputs: recomputed from the inputs
            t, mu, rstd = _instance_norm_gate(x, a, k, e, ctx.eps, ctx.dim)
            y = x * t
        n = x.shape[ctx.dim]
        u = gy * y
        u = torch.addcmul(u, u, t, value=-1) if recorded else u.addcmul_(u, t, value=-1)  # dL/dz = gy x t (1 - t)
        g_d = u.sum(ctx.dim, keepdim=True)             # dL/dD, D = e + k mu - A mu
        A = a * rstd
        d_a = (u * x).sum(ctx.dim, keepdim=True) - g_d * mu   # dL/dA, through D's -A mu too
        c1 = d_a * a * rstd.pow(3) * (-1.0 / n)        # 2/n dL/dvar, dL/dvar = dL/drstd * -rstd^3 / 2
        c0 = g_d * (k - A) / n - c1 * mu               # dL/dmu / n, and var's (x - mu) term's constant
        gx = torch.addcmul(c0, gy, t)
        gx = torch.addcmul(torch.addcmul(gx, u, A), x, c1) if recorded else gx.addcmul_(u, A).addcmul_(x, c1)
        over = [i for i in range(x.ndim) if a.shape[i] == 1]   # the per-channel gradients: summed over the rest
        grads = (rstd * d_a, g_d * mu, g_d)
        return (gx, *(g.sum(over, keepdim=True) if need else None
                      for g, need in zip(grads, ctx.needs_input_grad[1:4])), None, None)

    @staticmethod
    def jvp(ctx, dx, da, dk, de, *_):
        """Tangent of ``y = x t``, ``t = sigmoid(z)``, ``z = A (x - mu) + k mu + e``, ``A = a rstd``:
        ``dy = dx t + x t (1 - t) dz`` with ``dmu = mean(dx)``, ``drstd = -rstd^3 mean((x - mu) dx)``."""
        x, a, k, e, t, y, mu, rstd = ctx.saved_tensors
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        da, dk, de = (zero if d is None else d for d in (da, dk, de))
        dx = torch.zeros_like(x) if dx is None else dx
        d = x - mu
        dmu = dx.mean(ctx.dim, keepdim=True)
        drstd = -rstd.pow(3) * (d * dx).mean(ctx.dim, keepdim=True)
        dz = (da * rstd + a * drstd) * d + a * rstd * (dx - dmu) + dk * mu + k * dmu + de
        return dx * t + y * (1 - t) * dz, None, None, None


@register_block("shuffle_attention", family="attention", layout="nchw",
                paper="Zhang & Yang, SA-Net: Shuffle Attention for Deep Convolutional Neural Networks, ICASSP 2021",
                url="https://arxiv.org/abs/2102.00240",
                example=Example(args=(128,), kwargs={}, input_shape=(2, 128, 14, 14)))
@validated()
class ShuffleAttention(nn.Module):
    """Grouped channel + spatial gates, then a channel shuffle.

    Args:
        channels: input (= output) channels C, divisible by ``2 * groups``.
        groups: G, number of sub-feature groups (paper: 64).
        eps: GroupNorm epsilon (1e-5).
    """

    def __init__(self, channels: int, groups: int = 64, eps: float = 1e-5):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.groups = check_positive_int("groups", groups)
        check_divisible("channels", channels, "2 * groups", 2 * groups)
        half = channels // (2 * groups)
        self.eps = eps
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.gn = nn.GroupNorm(half, half, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        if not is_plain(self.gn, nn.GroupNorm):
            return self._forward_calling_norm(x)
        # (not under torch.jit.trace: the TorchScript ONNX exporter kept the example's size in its view back from
        # (B, H W, C), and onnxruntime refused every other size)
        if is_channels_last(x) and not torch.jit.is_tracing():
            return self._forward_channels_last(x)
        b, c, h, w = x.shape
        g, half = self.groups, c // (2 * self.groups)
        x_c, x_s = x.reshape(b * g, 2 * half, h, w).chunk(2, dim=1)
        gate_c = torch.sigmoid(self.cweight * spatial_mean(x_c, keepdim=True) + self.cbias)
        # W2 GN(X) + b2 is one GroupNorm whose affine is composed with (W2, b2): its weight W2 * gamma and bias
        # W2 * beta + b2 (per channel), so the map is written once before the sigmoid (in place)
        sw, sb = self.sweight.view(-1), self.sbias.view(-1)
        gate_s = F.group_norm(x_s, self.gn.num_groups, self.gn.weight * sw, torch.addcmul(sb, self.gn.bias, sw),
                              self.gn.eps).sigmoid_()
        if g % 2:
            return channel_shuffle(torch.cat([x_c * gate_c, x_s * gate_s], dim=1).reshape(b, c, h, w), 2)
        # concatenation + shuffle: output channel 2 i + k is channel k C/2 + i of the concatenation, i.e. (group
        # k G/2 + g', position j) -> (g', j, k): in the 6-D view below each half has its place
        def shuffled(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, 2, g // 2, *t.shape[1:]).permute(0, 2, 3, 1, 4, 5)

        # (traced, the out= writes into slices below gave wrong answers in the TorchScript ONNX exporter's graph)
        if (torch.is_grad_enabled() or transformed(x, gate_c, gate_s) or torch.compiler.is_compiling()
                or torch.jit.is_tracing()):
            y = torch.cat([shuffled(x_c * gate_c), shuffled(x_s * gate_s)], dim=2)  # one copy
            return y.view(b, c, h, w)
        # without autograd, the gated halves are written straight to their places: no copy at all
        out = x.new_empty(b, c, h, w)
        y = out.view(b, g // 2, 2 * half, 2, h, w)
        xs = shuffled(x.reshape(b * g, 2 * half, h, w))
        torch.mul(xs[:, :, :half], shuffled(gate_c), out=y[:, :, :half])
        torch.mul(xs[:, :, half:], shuffled(gate_s), out=y[:, :, half:])
        return out

    def _forward_calling_norm(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's equations as written, calling ``self.gn``: for a hooked, pruned, parametrized or replaced
        GroupNorm, whose own forward the fast paths (its weight and bias composed with W2, b2) would skip."""
        b, c, h, w = x.shape
        g, half = self.groups, c // (2 * self.groups)
        x_c, x_s = x.reshape(b * g, 2 * half, h, w).chunk(2, dim=1)
        gate_c = torch.sigmoid(self.cweight * spatial_mean(x_c, keepdim=True) + self.cbias)
        gate_s = torch.sigmoid(self.sweight * self.gn(x_s) + self.sbias)
        return channel_shuffle(torch.cat([x_c * gate_c, x_s * gate_s], dim=1).reshape(b, c, h, w), 2)

    def _forward_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        """The same function on a channels-last map, in its (B, H W, C) view (the (B G, C/G, H, W) view of the
        NCHW form would copy the map, and the shuffle's strided writes would stride across C).

        Both halves are ``x * sigmoid(x * A + D)`` with per-(image, channel) A and D (:func:`_instance_norm_gate`):
        the channel half has A = 0 and D = W1 s + b1; the spatial half's GroupNorm (one channel per group) composed
        with (W2, b2) has A = W2 gamma / sqrt(var + eps) and D = W2 beta + b2 - mu A.  Two means over the positions
        (C innermost; torch.var_mean and native_group_norm over that axis cost 17 broadcast multiplies, these passes
        ~3) give s, mu and var of every channel; under autograd the hand-written backward of
        :class:`_GatedInstanceNorm`.  The shuffle is ``layers.channel_shuffle`` (ATen's kernel, which keeps the
        layout).
        """
        b, c, h, w = x.shape
        g, half = self.groups, c // (2 * self.groups)
        xp = x.permute(0, 2, 3, 1).reshape(b, h * w, c)                               # a view: x is channels-last
        sw, z = self.sweight.view(-1), self.sweight.new_zeros(half)
        a, k, e = (torch.stack(pair).expand(g, 2, half).reshape(1, 1, c) for pair in (
            (z, sw * self.gn.weight), (self.cweight.view(-1), z),
            (self.cbias.view(-1), torch.addcmul(self.sbias.view(-1), self.gn.bias, sw))))
        if not torch.is_grad_enabled():
            y = _instance_norm_gate(xp, a, k, e, self.gn.eps, 1)[0].mul_(xp)
        elif torch.compiler.is_compiling():
            y = xp * _instance_norm_gate(xp, a, k, e, self.gn.eps, 1)[0]
        else:
            y = _GatedInstanceNorm.apply(xp, a, k, e, self.gn.eps, 1)[0]
        # output channel 2 i + k is channel k C/2 + i of the gated map (ATen's kernel on a channels-last map)
        return channel_shuffle(y.view(b, h, w, c).permute(0, 3, 1, 2), 2)
