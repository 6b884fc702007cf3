"""Structural re-parameterization blocks (training form -> one convolution), one file each.

Importing a module registers its blocks; each is re-exported here."""
from .acnet_block import ACBlock
from .diverse_branch_block import DiverseBranchBlock
from .repmlp_block import RepMLPBlock
from .repvgg_block import RepVGGBlock
from ._repmlpnet_block import RepMLPNetBlock
from .repvgg_sse_block import RepConv3x3, RepVGGSSEBlock

__all__ = [
    "ACBlock", "DiverseBranchBlock", "RepMLPBlock", "RepMLPNetBlock", "RepVGGBlock", "RepConv3x3", "RepVGGSSEBlock",
]
