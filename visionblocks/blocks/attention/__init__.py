"""Attention blocks: channel, spatial, token and window attention, one file each.

Importing a module registers its blocks; each is re-exported here."""
from .aft import AFTFull, AFTLocal, AFTSimple, AFTConv
from .bam import BAM
from .cbam import CBAM
from .coatnet_attention import CoAtNetTransformerBlock
from .coord_attention import CoordAttention
from .cot import ContextualTransformer
from .csra import CSRA
from .danet import DualAttention
from .double_attention import DoubleAttention
from .eca import EfficientChannelAttention
from .emsa import EMSA
from .external_attention import ExternalAttention
from .global_filter import GlobalFilter
from .halo_attention import HaloAttention
from .mobilevit_attention import MobileViTBlock
from .mobilevitv2_attention import MobileViTv2Block
from .muse import MUSEAttention
from .outlook_attention import OutlookAttention
from .polarized_attention import PolarizedSelfAttentionParallel, PolarizedSelfAttentionSequential
from .pyramid_split_attention import PyramidSplitAttention
from .s2_attention import S2Attention
from .se import SqueezeExcite
from .self_attention import SelfAttention
from .sge import SpatialGroupEnhance
from .shuffle_attention import ShuffleAttention
from .simplified_self_attention import SimplifiedSelfAttention
from .triplet_attention import TripletAttention
from .ufo_attention import UFOAttention

__all__ = [
    "AFTFull", "AFTLocal", "AFTSimple", "AFTConv", "BAM", "CBAM", "CoAtNetTransformerBlock", "CoordAttention",
    "ContextualTransformer", "CSRA", "DualAttention", "DoubleAttention", "EfficientChannelAttention", "EMSA",
    "ExternalAttention", "GlobalFilter", "HaloAttention", "MobileViTBlock", "MobileViTv2Block", "MUSEAttention",
    "OutlookAttention", "PolarizedSelfAttentionParallel", "PolarizedSelfAttentionSequential",
    "PyramidSplitAttention", "S2Attention", "SqueezeExcite", "SelfAttention", "SpatialGroupEnhance",
    "ShuffleAttention", "SimplifiedSelfAttention", "TripletAttention", "UFOAttention",
]
