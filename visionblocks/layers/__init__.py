"""Shared layers: the one place for helpers every block uses."""
from .activations import create_act, get_act_layer
from .checks import check_nchw, check_nlc, check_odd, check_size
from .conv_norm_act import ConvNormAct, same_padding
from .drop import DropPath, drop_path
from .fuse import fuse_conv_bn, fuse_conv_bn_weights, identity_kernel, pad_kernel
from .local_aggregate import local_aggregate
from .helpers import check_divisible, check_positive_int, make_divisible, to_2tuple
from .norm import GroupNorm1, LayerNorm2d, create_norm, get_norm_layer
from .pool import spatial_mean
from .shuffle import channel_shuffle

__all__ = [
    "create_act", "get_act_layer", "check_nchw", "check_nlc", "check_odd", "check_size", "ConvNormAct", "same_padding",
    "DropPath", "drop_path", "fuse_conv_bn", "fuse_conv_bn_weights", "identity_kernel", "pad_kernel",
    "check_divisible", "check_positive_int", "make_divisible", "to_2tuple", "GroupNorm1", "LayerNorm2d",
    "create_norm", "get_norm_layer", "channel_shuffle", "spatial_mean", "local_aggregate",
]
