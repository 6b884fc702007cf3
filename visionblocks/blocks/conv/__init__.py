"""Convolution variants, one file each.

Importing a module registers its blocks; each is re-exported here."""
from .atrous_conv import AtrousConv
from .coconv import CoConv
from .cond_conv import CondConv
from .deformable_conv import DeformableConv
from .depthwise_separable_conv import DepthwiseSeparableConv
from .do_conv import DOConv2d
from .dynamic_conv import DynamicConv
from .ghost_conv import GhostConv
from .graph_conv import GraphConv
from .group_conv import GroupConv
from .het_conv import HetConv
from .inception_block import InceptionBlock
from .involution import Involution
from .mbconv import MBConv
from .modulated_deformable_conv import ModulatedDeformableConv
from .octave_conv import OctaveConv
from .pointwise_conv import PointwiseConv
from .res2net_block import Res2NetBlock
from .selective_kernel_conv import SelectiveKernelConv
from .self_calibrated_conv import SelfCalibratedConv
from .spatially_separable_conv import SpatiallySeparableConv
from .split_attention_conv import SplitAttentionConv
from .transposed_conv import TransposedConv
from .vanilla_conv import VanillaConv

__all__ = [
    "AtrousConv", "CoConv", "CondConv", "DeformableConv", "DepthwiseSeparableConv", "DOConv2d", "DynamicConv",
    "GhostConv", "GraphConv", "GroupConv", "HetConv", "InceptionBlock", "Involution", "MBConv",
    "ModulatedDeformableConv", "OctaveConv", "PointwiseConv", "Res2NetBlock", "SelectiveKernelConv",
    "SelfCalibratedConv", "SpatiallySeparableConv", "SplitAttentionConv", "TransposedConv", "VanillaConv",
]
