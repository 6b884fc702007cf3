"""Kept for imports of ``visionblocks.models.sge_resnet``: sge_resnet50 is registered with the other attention
ResNets in :mod:`visionblocks.models.attention_resnets`."""
from .attention_resnets import sge_resnet50

__all__ = ["sge_resnet50"]
