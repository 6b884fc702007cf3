"""Kept for imports of ``visionblocks.models.triplet_resnet``: triplet_resnet50 is registered with the other attention
ResNets in :mod:`visionblocks.models.attention_resnets`."""
from .attention_resnets import triplet_resnet50

__all__ = ["triplet_resnet50"]
