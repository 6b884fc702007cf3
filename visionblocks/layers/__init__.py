"""Shared layers: the one place for helpers every block uses."""
from .activations import create_act, get_act_layer
from .checks import check_nchw, check_nlc, check_odd, check_size, check_tokens
from .conv_geometry import check_conv_channels, conv_geometry, same_padding
from .conv_norm_act import ConvNormAct
from .drop import DropPath, drop_path
from .fuse import fuse_conv_bn, fuse_conv_bn_weights, identity_kernel, pad_kernel
from .heads import merge_heads, split_heads
from .helpers import (
    check_divisible, check_positive_int, deprecated_kwargs, make_divisible, reduced_channels, to_2tuple,
)
from .layer_type import LayerType
from .local_aggregate import local_aggregate
from .mlp import Mlp
from .norm import GroupNorm1, LayerNorm2d, create_norm, get_norm_layer
from .pool import spatial_mean
from .shuffle import channel_shuffle
from .squeeze_excite import SqueezeExcite
from .weight_init import init_weights

__all__ = [
    "create_act", "get_act_layer", "check_nchw", "check_nlc", "check_odd", "check_size", "check_tokens",
    "check_conv_channels", "conv_geometry", "same_padding", "ConvNormAct", "DropPath", "drop_path",
    "fuse_conv_bn", "fuse_conv_bn_weights", "identity_kernel", "pad_kernel", "merge_heads", "split_heads",
    "check_divisible", "check_positive_int", "deprecated_kwargs", "make_divisible", "reduced_channels",
    "to_2tuple", "LayerType", "local_aggregate", "Mlp", "GroupNorm1", "LayerNorm2d", "create_norm",
    "get_norm_layer", "spatial_mean", "channel_shuffle", "SqueezeExcite", "init_weights",
]
