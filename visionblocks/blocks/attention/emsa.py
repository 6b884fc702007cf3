"""Efficient Multi-head Self-Attention, EMSA (Zhang & Yang, ResT: An Efficient Transformer for Visual
Recognition, NeurIPS 2021, arXiv 2105.13677, https://arxiv.org/abs/2105.13677).

On the (B, C, H, W) map seen as N = H W tokens: ``Q = X W_Q`` (h heads); the keys and values come from a
spatially reduced map, ``X' = LN(DWConv(X))`` with a depthwise convolution of kernel s + 1, stride s and
padding s // 2 (s = ``sr_ratio``; none when s = 1), ``K, V = X' W_K, X' W_V``.  Then
``EMSA = IN(softmax(Conv1x1(Q K^T / sqrt(d_k)))) V`` followed by the output projection, where the 1x1
convolution mixes the h attention maps across heads and IN is an instance norm over each head's map
(no affine).  As in the authors' code (wofmanaf/ResT) the head-mixing transform is used only when h > 1;
without it the attention is plain ``torch.nn.functional.scaled_dot_product_attention``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionblocks.layers import (
    check_divisible, check_nchw, check_positive_int, float32_at_least, is_plain, layout_like, merge_heads,
    records_grad, sdpa, split_heads,
)
from visionblocks.layers.validate import validated
from visionblocks.registry import Example, register_block

__all__ = ["EMSA"]


@register_block("emsa", family="attention", layout="nchw",
                paper="Zhang & Yang, ResT: An Efficient Transformer for Visual Recognition, NeurIPS 2021",
                url="https://arxiv.org/abs/2105.13677",
                example=Example(args=(64,), kwargs={"num_heads": 4, "sr_ratio": 2}, input_shape=(2, 64, 14, 14)))
@validated()
class EMSA(nn.Module):
    """ResT's efficient multi-head self-attention, (B, C, H, W) -> (B, C, H, W).

    ``forward_tokens(x, H, W)`` runs it on (B, H W, C) tokens (as ResT's blocks do).

    Args:
        channels: C (must be divisible by ``num_heads``).
        num_heads: h (ResT stages: 1, 2, 4, 8).
        sr_ratio: s, the stride of the key/value spatial reduction (ResT stages: 8, 4, 2, 1).
        qkv_bias: biases on the Q and K/V projections (ResT models: True).
        apply_transform: the 1x1 convolution across heads + instance norm (ResT: True; only when h > 1).
        attn_drop: dropout on the attention weights (training only).
    """

    def __init__(self, channels: int, num_heads: int = 8, sr_ratio: int = 1, qkv_bias: bool = True,
                 apply_transform: bool = True, attn_drop: float = 0.0):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.num_heads = check_positive_int("num_heads", num_heads)
        check_divisible("channels", channels, "num_heads", num_heads)
        self.sr_ratio = check_positive_int("sr_ratio", sr_ratio)
        self.scale = (channels // num_heads) ** -0.5
        self.q = nn.Linear(channels, channels, bias=qkv_bias)
        self.kv = nn.Linear(channels, 2 * channels, bias=qkv_bias)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(channels, channels, sr_ratio + 1, sr_ratio, sr_ratio // 2, groups=channels)
            self.sr_norm = nn.LayerNorm(channels)
        else:
            self.sr, self.sr_norm = nn.Identity(), nn.Identity()
        self.apply_transform = bool(apply_transform and num_heads > 1)
        if self.apply_transform:
            self.transform_conv = nn.Conv2d(num_heads, num_heads, 1)
            self.transform_norm = nn.InstanceNorm2d(num_heads)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(channels, channels)

    def transformed_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``IN(softmax(Conv1x1(Q K^T / sqrt(d_k)))) V`` for (B, h, N, d) q and (B, h, N', d) k, v -> (B, h, N, d).

        Computed heads-first, (h, B, N, N'): ``q k^T`` lands there contiguous, so ``transform_conv`` (the 1x1
        convolution across the h maps) is one matrix product on (h, B N N') with its bias fused (oneDNN's 1x1
        convolution on the h-channel (B, h, N, N') map was ~5x slower forward+backward); the softmax and the
        instance norm (``transform_norm``: no affine, no running statistics) act per map.

        The map is computed in float32 at least (also under ``torch.autocast``) and rounded once before ``@ V``:
        the softmax of ResT's small logits is nearly uniform (~1/N') and the instance norm divides its small
        deviations by their small spread, so rounding the logits or the softmax to bfloat16 is blown up (a whole
        rest_lite at 64x64 was 0.39 away from float64 in relative norm, now 0.02; float32: 1e-4).
        """
        with float32_at_least(q, k) as (q, k):  # (autocast would round the products to its dtype: off for the map)
            attn = self._attention_map(q, k).to(v.dtype)
        return (self.attn_drop(attn) @ v.transpose(0, 1)).transpose(0, 1)

    def _attention_map(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``IN(softmax(Conv1x1(Q K^T / sqrt(d_k))))``, (h, B, N, N'), in the dtype of ``q`` and ``k``.

        Where no autograd graph is recorded (inference) and ``transform_conv`` is plain, the map exists once
        (:meth:`_attention_map_inference`); otherwise the graph saves the maps its backward needs (``q k^T``
        for the head mixing's weight gradient, the softmax for its own and the instance norm's backward, the
        normalised map for ``@ V``) and the mixed logits are dropped as soon as the softmax has read them.
        """
        conv = self.transform_conv
        plain = is_plain(conv, nn.Conv2d)
        if plain and not records_grad(q, k, *conv.parameters()) and not torch.jit.is_tracing():  # (no softmax(out=)
            # in the TorchScript ONNX exporter)
            return self._attention_map_inference(q, k)
        attn = (q * self.scale).transpose(0, 1) @ k.permute(1, 0, 3, 2)                  # (h, B, N, N')
        shape = attn.shape
        if plain:
            w, b = conv.weight.flatten(1), conv.bias
            attn = torch.addmm(b[:, None].to(attn.dtype), w.to(attn.dtype), attn.reshape(self.num_heads, -1))
            attn = attn.view(shape)   # (the unmixed map: kept only where the graph saved it)
        else:  # a hooked or replaced convolution is called on the (B, h, N, N') maps, in its parameters' dtype
            dtype = next(conv.parameters(), attn).dtype
            attn = conv(attn.transpose(0, 1).to(dtype)).transpose(0, 1).to(attn.dtype)
        attn = attn.softmax(dim=-1)
        if torch.jit.is_tracing():
            # the instance norm written out (a 1x1 map gives 0 too): the TorchScript ONNX exporter translates
            # F.instance_norm only for a channel count (here the batch) it knows, and the size test below is a
            # Python bool, which a trace keeps as a constant
            d = attn - attn.mean((-2, -1), keepdim=True)
            return d * torch.rsqrt(d.square().mean((-2, -1), keepdim=True) + self.transform_norm.eps)
        if shape[-2] * shape[-1] > 1:
            return F.instance_norm(attn, eps=self.transform_norm.eps)
        return torch.zeros_like(attn)  # one query and one key (a 1x1 map): the instance norm of a single value is 0

    def _attention_map_inference(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """:meth:`_attention_map` without autograd, holding one (h, B, N, N') map: the head mixing is folded into
        a single product and the softmax and the instance norm work in place.

        The 1x1 convolution's output map o is ``sum_g w_og (q_g k_g^T) s + b_o = (s [w_o0 q_0, .., w_o(h-1)
        q_(h-1)]) [k_0, .., k_(h-1)]^T + b_o``: the heads' queries, each scaled by its weight, concatenated
        along the channels, times all the keys (h matrix products of depth C instead of h of depth d and an
        (h, h) mix of the maps, which needed a second map).  The bias ``b_o`` is one constant per map, so it
        cancels in the softmax over each row and is left out.  The instance norm is the two-pass one of
        ``F.instance_norm`` (mean, then the mean square of the centred map), done in place.
        """
        B, h, N, d = q.shape
        w = self.transform_conv.weight.flatten(1).to(q.dtype).repeat_interleave(d, dim=1)   # (h_out, h d)
        qs = (q * self.scale).transpose(1, 2).reshape(B, N, h * d)                        # (B, N, C): head-major
        qw = qs * w[:, None, None, :]                                                     # (h_out, B, N, C)
        attn = qw @ k.transpose(1, 2).flatten(2).transpose(1, 2)                          # (h, B, N, N')
        del qw
        torch.softmax(attn, dim=-1, out=attn)
        if N * attn.shape[-1] == 1:
            return attn.zero_()  # a 1x1 map: the instance norm of a single value is 0
        flat = attn.view(h * B, N * attn.shape[-1])  # (a view: normalised in place)
        flat.sub_(flat.mean(dim=-1, keepdim=True))
        var = torch.linalg.vector_norm(flat, dim=-1, keepdim=True).square_().div_(flat.shape[1])
        flat.mul_(var.add_(self.transform_norm.eps).rsqrt_())
        return attn

    def forward_tokens(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """EMSA on tokens (B, N = H W, C) in row-major order -> (B, N, C)."""
        B, N, C = x.shape
        q = split_heads(self.q(x), self.num_heads)
        r = x
        if self.sr_ratio > 1:   # keys and values from the spatially reduced map LN(DWConv(X))
            r = self.sr_norm(self.sr(x.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2))
        k, v = split_heads(self.kv(r), 2 * self.num_heads).chunk(2, dim=1)
        if self.apply_transform:
            out = self.transformed_attention(q, k, v)
        else:
            out = sdpa(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        return self.proj(merge_heads(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.channels, type(self).__name__)
        B, C, H, W = x.shape
        y = self.forward_tokens(x.flatten(2).transpose(1, 2), H, W)
        return layout_like(y.transpose(1, 2).reshape(B, C, H, W), x)  # (a channels-last view: x's layout)
