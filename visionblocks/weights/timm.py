"""Converters from timm's layouts (timm 1.0.31).

timm's ResNet-class networks (ResNet/ResNeXt, SE-/ECA-ResNet, deep stem, average-pool shortcut) share
torchvision's keys and load through ``torchvision.resnet``.
"""
from __future__ import annotations

__all__: list[str] = []
