"""Kept for imports of ``visionblocks.models.bam_resnet``: bam_resnet50 is registered with the other attention
ResNets in :mod:`visionblocks.models.attention_resnets`."""
from .attention_resnets import bam_resnet50

__all__ = ["bam_resnet50"]
