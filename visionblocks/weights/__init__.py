"""Released weights: load torchvision's, timm's and the papers' authors' checkpoints into our models, exactly.

>>> from visionblocks.weights import load_checkpoint, create_pretrained
>>> net = create_pretrained("resnet50", "tv_in1k")              # by name: built as the checkpoint's network
>>> res = load_checkpoint(net, "/path/to/resnet50-0676ba61.pth")  # or any path / http(s) / file:// URL

A checkpoint's layout (ours, torchvision's, timm's, an author's) is recognised from its keys and converted
(:mod:`visionblocks.weights.convert`); the load is validated in full before anything is copied
(:mod:`visionblocks.weights.load`).  ``python -m visionblocks.weights.docs`` writes ``docs/weights.md``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch.nn as nn

from visionblocks.layers.validate import check_module

from ._io import read_checkpoint, sha256_of, unwrap_state_dict
from .convert import OURS, Converter, find_converter, get_converter, list_converters, register_converter
from .errors import (
    ArchitectureMismatchError, CheckpointError, ChecksumError, LayoutError, StateDictMismatchError,
)
from .load import (
    LoadResult, added_modules, _MODEL_FIRST, adapt_input_conv, classifier_names, first_conv_name, load_state_dict,
)
from . import torchvision as _torchvision  # noqa: F401  (registers its converters)
from . import timm as _timm  # noqa: F401
from . import authors as _authors  # noqa: F401
from . import authors_cnn as _authors_cnn  # noqa: F401
from . import authors_token as _authors_token  # noqa: F401
from .pretrained import PretrainedWeights, create_pretrained, get_weights, list_weights, register_weights

__all__ = [
    "load_checkpoint", "load_state_dict", "read_checkpoint", "unwrap_state_dict", "sha256_of", "LoadResult",
    "Converter", "register_converter", "list_converters", "get_converter", "find_converter", "OURS",
    "added_modules", "adapt_input_conv", "classifier_names", "first_conv_name",
    "CheckpointError", "ChecksumError", "LayoutError", "ArchitectureMismatchError", "StateDictMismatchError",
    "PretrainedWeights", "create_pretrained", "get_weights", "list_weights", "register_weights",
]


def load_checkpoint(model: nn.Module, checkpoint: str | os.PathLike | Mapping, *, strict: bool = True,
                    sha256: str | None = None, layout: str | None = None,
                    allow_missing: str | Sequence[str] | None = "added", use_ema: bool = False,
                    progress: bool = True, model_dir: str | None = None, file_name: str | None = None) -> LoadResult:
    """Load ``checkpoint`` into ``model`` (in place) and say what was loaded.

    Args:
        model: the network to fill.
        checkpoint: a file path, an ``http(s)://`` URL (downloaded once into ``torch.hub``'s cache), a
            ``file://`` URL (read in place, as its path), or a loaded mapping.  A plain state dict, one under
            ``state_dict``/``model``/``model_ema``..., keys prefixed with ``module.`` (DDP), or a safetensors file
            (needs the ``safetensors`` package).
        strict: raise, naming every key, when the checkpoint lacks a model key or has one the model lacks
            (beyond the expected cases: added blocks, a replaced classifier); ``False`` loads the common keys
            and returns the lists.  A wrong shape always raises.  Nothing is loaded when it raises.
        sha256: the file's expected sha256 (hex, or a prefix of it); checked before reading.
        layout: force a layout (a converter name, or ``"visionblocks"``) instead of recognising it.
        allow_missing: ``"added"`` (default): modules the model adds to the checkpoint's network
            (:func:`added_modules`) may be absent from it; or a list of module names; ``None``: none.
        use_ema: take the EMA weights of a training checkpoint.

    Returns:
        a :class:`LoadResult` (layout, missing/unexpected keys, the added blocks' keys, dropped classifier and
        adapted first-convolution keys, and messages).
    """
    check_module(model, "load_checkpoint", _MODEL_FIRST)  # before a download
    state_dict = read_checkpoint(checkpoint, sha256=sha256, use_ema=use_ema, progress=progress, model_dir=model_dir,
                                 file_name=file_name)
    return load_state_dict(model, state_dict, strict=strict, layout=layout, allow_missing=allow_missing)
