"""Conv + BatchNorm fusion and kernel padding: the arithmetic of structural re-parameterization
(Ding et al., RepVGG, arXiv 2101.03697), shared by every re-parameterizable block."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["BATCH_NORMS_2D", "is_plain_batch_norm", "fuse_conv_bn_weights", "fuse_conv_bn", "pad_kernel",
           "identity_kernel"]

# the 2-d BatchNorms a convolution folds with (SyncBatchNorm: what nn.SyncBatchNorm.convert_sync_batchnorm makes)
BATCH_NORMS_2D = (nn.BatchNorm2d, nn.SyncBatchNorm)
_PLAIN_FORWARDS = tuple(cls.forward for cls in BATCH_NORMS_2D)


def is_plain_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a 2-d BatchNorm that does nothing but normalise: one of :data:`BATCH_NORMS_2D` or a
    subclass keeping their ``forward``.  A subclass with its own ``forward`` may do more (timm's ``BatchNormAct2d``
    activates), so folding it into a convolution, or letting a block stand in for it, would drop that part."""
    return isinstance(module, BATCH_NORMS_2D) and type(module).forward in _PLAIN_FORWARDS


def fuse_conv_bn_weights(weight: torch.Tensor, bias: torch.Tensor | None,
                         bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x))`` as one convolution (``bn`` in eval mode).

    ``W' = W * gamma / sqrt(var + eps)``, ``b' = beta + (b - mean) * gamma / sqrt(var + eps)``.  Computed in
    float32 at least and rounded once to the dtype of the operands (bfloat16 would round every step).
    """
    out_dtype = torch.promote_types(weight.dtype, bn.running_var.dtype)
    acc = torch.promote_types(out_dtype, torch.float32)
    var, mean = bn.running_var.to(acc), bn.running_mean.to(acc)
    std = (var + bn.eps).sqrt()
    gamma = bn.weight.to(acc) if bn.affine else torch.ones_like(std)
    beta = bn.bias.to(acc) if bn.affine else torch.zeros_like(std)
    t = gamma / std
    b = bias.to(acc) if bias is not None else torch.zeros_like(mean)
    w = weight.to(acc) * t.reshape(-1, *([1] * (weight.ndim - 1)))
    return w.to(out_dtype), (beta + (b - mean) * t).to(out_dtype)


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new ``nn.Conv2d`` computing ``bn(conv(x))`` in eval mode (trainable when a parameter of the pair is)."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                      device=conv.weight.device, dtype=conv.weight.dtype)
    w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn)
    with torch.no_grad():
        fused.weight.copy_(w)
        fused.bias.copy_(b)
    # trainable where the pair was (a frozen backbone stays frozen)
    return fused.requires_grad_(any(p.requires_grad for p in (*conv.parameters(), *bn.parameters())))


def pad_kernel(weight: torch.Tensor, kernel_size: tuple[int, int]) -> torch.Tensor:
    """Zero-pad a (O, I, kh, kw) kernel symmetrically to ``kernel_size`` (both differences must be even)."""
    kh, kw = weight.shape[-2:]
    dh, dw = kernel_size[0] - kh, kernel_size[1] - kw
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(f"cannot centre a {kh}x{kw} kernel in {kernel_size[0]}x{kernel_size[1]}")
    return F.pad(weight, (dw // 2, dw // 2, dh // 2, dh // 2))


def identity_kernel(channels: int, groups: int, kernel_size: tuple[int, int], *, device=None,
                    dtype=None) -> torch.Tensor:
    """The (channels, channels/groups, kh, kw) kernel of a grouped convolution that is the identity."""
    in_per_group = channels // groups
    k = torch.zeros(channels, in_per_group, *kernel_size, device=device, dtype=dtype)
    idx = torch.arange(channels, device=device)
    k[idx, idx % in_per_group, kernel_size[0] // 2, kernel_size[1] // 2] = 1.0
    return k
