"""MLP blocks: token- and channel-mixing MLPs, one file each.

Importing a module registers its blocks; each is re-exported here."""
from .gmlp_block import GMLPBlock
from .mixer_block import MixerBlock
from .resmlp_block import ResMLPBlock
from .smlp_block import SparseMLPBlock
from .weighted_permute_mlp import WeightedPermuteMLP

__all__ = [
    "GMLPBlock", "MixerBlock", "ResMLPBlock", "SparseMLPBlock", "WeightedPermuteMLP",
]
