"""Shared layers: the one place for helpers every block and model uses (one concept per file)."""
from .activations import get_act_layer, create_act
from .affine import Affine
from .attention import MultiHeadAttention, sdpa
from .checks import check_nchw, check_nlc, check_size, check_tokens, check_odd
from .conv_geometry import check_conv_channels, conv_geometry, square_conv_geometry, same_padding
from .conv_mlp import ConvMlp
from .conv_norm_act import ConvNormAct
from .create_attn import get_attn_layer, create_attn
from .derived_buffers import DerivedBuffers
from .dilation import dilate_convs, stride_or_dilate
from .drop import drop_path, DropPath
from .files import missing_dirs, write_all_or_none
from .fuse import (
    BATCH_NORMS_2D, is_plain_batch_norm, fuse_conv_bn_weights, fuse_conv_bn, pad_kernel, identity_kernel,
)
from .heads import split_heads, merge_heads
from .helpers import (
    make_divisible, reduced_channels, to_2tuple, check_positive_int, check_divisible, deprecated_kwargs,
    deprecated_flag, records_grad, to_names, transformed, functorch_wrapped,
)
from .layer_type import LayerType
from .local_aggregate import local_aggregate
from .memory_format import (
    as_memory_format, cat_channels, conv_weights_channels_last, dense_strides, is_channels_last, layout_like,
    memory_format_of,
)
from .metaformer import MetaFormerBlock
from .mlp import Mlp
from .norm import LayerNorm2d, GroupNorm1, get_norm_layer, create_norm
from .norm_act import NormAct
from .plane_conv import PlaneConv2d
from .precision import float32_at_least
from .plain import is_hooked, is_plain
from .patches import pad_to_patches, unfold_patches, fold_patches
from .pointwise import pointwise_linear, pointwise_forward
from .pool import avg_pool_ceil, max_over, mean_over, spatial_mean
from .resize import resize_bicubic
from .se_options import se_kwargs, deprecated_se_ratio
from .shuffle import channel_shuffle
from .squeeze_excite import SqueezeExcite
from .token_linear import token_linear
from .windows import crop_to, fold_windows, gather_windows, window_count
from .validate import validated, check_arg, check_input_dtype, blocks_with_pooled_bn, fx_proxy, fx_leaf
from .weight_init import init_weights

__all__ = [
    "dilate_convs", "stride_or_dilate", "records_grad", "transformed", "functorch_wrapped", "as_memory_format", "sdpa",
    "get_act_layer", "create_act", "Affine", "MultiHeadAttention", "check_nchw", "check_nlc", "check_size",
    "check_tokens", "check_odd", "check_conv_channels", "conv_geometry", "square_conv_geometry", "same_padding", "ConvMlp",
    "ConvNormAct", "get_attn_layer", "create_attn", "drop_path", "DropPath", "BATCH_NORMS_2D", "is_plain_batch_norm",
    "fuse_conv_bn_weights",
    "fuse_conv_bn", "pad_kernel", "identity_kernel", "split_heads", "merge_heads", "make_divisible",
    "reduced_channels", "to_2tuple", "to_names", "check_positive_int", "check_divisible", "deprecated_kwargs",
    "deprecated_flag", "LayerType", "local_aggregate", "is_channels_last", "layout_like", "memory_format_of",
    "cat_channels", "conv_weights_channels_last", "missing_dirs", "write_all_or_none", "MetaFormerBlock", "Mlp",
    "LayerNorm2d", "GroupNorm1",
    "get_norm_layer", "create_norm", "NormAct", "PlaneConv2d", "pad_to_patches", "unfold_patches", "fold_patches",
    "is_plain", "is_hooked", "DerivedBuffers", "float32_at_least", "dense_strides",
    "pointwise_linear", "pointwise_forward", "spatial_mean", "avg_pool_ceil", "max_over", "mean_over", "se_kwargs",
    "deprecated_se_ratio",
    "channel_shuffle", "SqueezeExcite", "token_linear", "init_weights", "validated", "check_arg",
    "check_input_dtype", "blocks_with_pooled_bn", "fx_proxy", "fx_leaf", "gather_windows", "fold_windows", "window_count", "crop_to", "resize_bicubic",
]
