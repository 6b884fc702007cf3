"""Kept for imports of ``visionblocks.models.sa_resnet``: sa_resnet50 is registered with the other attention
ResNets in :mod:`visionblocks.models.attention_resnets`."""
from .attention_resnets import sa_resnet50

__all__ = ["sa_resnet50"]
