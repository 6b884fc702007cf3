"""visionblocks: plug-and-play vision building blocks, each one correct, fast, exportable and tested.

>>> import visionblocks as vb
>>> gate = vb.create_block("se", 256)                # a block, by registry name
>>> net = vb.create_model("resnet50", attn="cbam")   # a model with a block inserted SENet-style
>>> net = vb.reparameterize(net.eval())              # fold every training-form branch (in place)

The public API: the registry functions and records below, :func:`reparameterize`, and the sub-packages
``layers`` (shared pieces), ``blocks`` (by family: ``blocks.attention``, ``blocks.conv``, ``blocks.reparam``,
``blocks.mlp``), ``models``, ``testing`` (the block and model contract as checks: ``testing.check_block``,
``testing.check_model``) and ``measure`` (parameters, MACs, timing, machine description, tables).
"""
import sys as _sys
import warnings as _warnings

with _warnings.catch_warnings():
    # torch 2.13 warns "Failed to initialize NumPy" twice on import when numpy is absent: numpy is no requirement of
    # ours (torch runs without it), and every CLI call printed it.  Scoped to this import: a program that imported
    # torch itself has seen torch's warning already.
    _warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch as _torch  # noqa: F401

from .registry import (
    FAMILIES, LAYOUTS, BlockInfo, Example, ModelInfo, block_info, create_block, create_model, list_blocks,
    list_models, model_info, register_block, register_model,
)
from .reparam import reparameterize
from .inference import fuse, to_channels_last
from .weights import create_pretrained, load_checkpoint
from . import layers  # shared layers
from . import blocks  # registers the blocks
from . import models  # registers the models
from . import measure, registry, reparam, testing
from .features import FeatureInfo
from .models import ModelBase, resolve_data_config
from .surgery import insert, lazy, replace
from .integrations.timm import timm_attn

__version__ = "0.1.0"

if "ultralytics.nn.tasks" in _sys.modules:
    # ultralytics is in use (it may be unpickling a checkpoint holding our blocks right now, and will rebuild the
    # model from its YAML to resume or fine-tune): teach it our YAML names and to fold our blocks before its fuse
    from .integrations import ultralytics as _ultralytics  # noqa: F401

__all__ = [
    # registry
    "FAMILIES", "LAYOUTS", "BlockInfo", "Example", "ModelInfo", "block_info", "create_block", "create_model",
    "list_blocks", "list_models", "model_info", "register_block", "register_model",
    # re-parameterization
    "reparameterize", "fuse", "to_channels_last", "load_checkpoint", "create_pretrained",
    # surgery on any nn.Module, framework integration, backbone features
    "insert", "replace", "lazy", "timm_attn", "FeatureInfo", "ModelBase", "resolve_data_config",
    # sub-packages and modules
    "layers", "blocks", "models", "testing", "measure", "registry", "reparam",
    "__version__",
]
