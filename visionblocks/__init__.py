"""visionblocks: plug-and-play vision building blocks, each one correct, fast, exportable and tested.

>>> import visionblocks as vb
>>> gate = vb.create_block("se", 256)                # a block, by registry name
>>> net = vb.create_model("resnet50", attn="cbam")   # a model with a block inserted SENet-style
>>> vb.reparameterize(net.eval())                    # fold every training-form branch
"""
from .registry import (
    FAMILIES, LAYOUTS, BlockInfo, Example, ModelInfo, block_info, create_block, create_model, list_blocks,
    list_models, model_info, register_block, register_model,
)
from .reparam import reparameterize
from . import layers  # noqa: F401  (shared layers)
from . import blocks  # noqa: F401  (registers the blocks)
from . import models  # noqa: F401  (registers the models)

__version__ = "0.1.0"

__all__ = [
    "FAMILIES", "LAYOUTS", "BlockInfo", "Example", "ModelInfo", "block_info", "create_block", "create_model",
    "list_blocks", "list_models", "model_info", "register_block", "register_model", "reparameterize",
    "__version__",
]
