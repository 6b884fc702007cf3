"""Weight initialisation, one way for the whole library: ``init_weights(model, conv=..., linear=...)`` applied
once at the end of a model's constructor, naming the scheme of the paper's code.

Schemes:
- ``conv="kaiming"`` (He et al., ICCV 2015, arXiv 1502.01852): convolution weights from
  ``N(0, 2 / fan_out)``, biases zero — the ResNet/MobileNet/EfficientNet family.
- ``linear="trunc_normal"``: linear weights from a normal truncated to +-2 std (``std``, 0.02 for
  transformers, ViT's scheme), biases zero; ``linear="normal"``: ``N(0, std)`` (MobileNetV2: 0.01), biases zero.
- ``None`` leaves that kind of layer at torch's default.
Norm layers keep torch's default (weight 1, bias 0).
"""
from __future__ import annotations

import torch.nn as nn

__all__ = ["init_weights"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def init_weights(module: nn.Module, conv: str | None = "kaiming", linear: str | None = None, std: float = 0.02,
                 conv_bias: bool = True) -> nn.Module:
    """Initialise every convolution and linear layer of ``module`` in place; return ``module``.

    ``conv``: ``"kaiming"`` (fan-out, ReLU gain), ``"trunc_normal"`` (``std``) or ``None``.
    ``linear``: ``"trunc_normal"``, ``"normal"`` (both ``std``) or ``None``.  ``conv_bias``: zero the
    convolutions' biases (when ``conv`` is set).
    """
    if conv not in ("kaiming", "trunc_normal", None):
        raise ValueError(f"conv must be 'kaiming', 'trunc_normal' or None, got {conv!r}")
    if linear not in ("trunc_normal", "normal", None):
        raise ValueError(f"linear must be 'trunc_normal', 'normal' or None, got {linear!r}")
    for m in module.modules():
        if isinstance(m, _CONV) and conv is not None:
            if conv == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.trunc_normal_(m.weight, std=std)
            if conv_bias and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear is not None:
            if linear == "trunc_normal":
                nn.init.trunc_normal_(m.weight, std=std)
            else:
                nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
