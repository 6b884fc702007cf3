"""Converters from the papers' authors' own layouts for the token, attention and other models (their released
checkpoints): GFNet, ResT, ViP, CoTNet, RedNet, ParNet, sMLPNet.

Each converter names the repository; the commit its harness case was verified at is in its manifest and in
docs/weights.md.  Nothing of the authors' code is here: only which of their tensors is which of ours.
"""
from __future__ import annotations

import torch

from visionblocks.models.gfnet import GFNet

from ._common import has_all
from .convert import Converter, register_converter, rename_keys

__all__ = ["GFNET", "convert_gfnet"]

StateDict = dict[str, torch.Tensor]


# -------------------------------------------------------------------------------- GFNet (raoyongming/GFNet)
def convert_gfnet(sd: StateDict, model: torch.nn.Module) -> StateDict:
    """The authors' isotropic GFNet (``gfnet.py``, class ``GFNet``): ``patch_embed.proj`` is our ``patch_embed``
    convolution and ``head`` our ``head.fc``; blocks, filters (``complex_weight``, (h, w, C, 2)), position
    embedding and norms keep their names."""
    return rename_keys(sd, [
        (r"patch_embed\.proj\.(weight|bias)", r"patch_embed.\1"),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    ])


GFNET = register_converter(Converter(
    name="authors.gfnet", source="authors: raoyongming/GFNet", model_types=(GFNet,),
    detect=lambda keys: has_all(keys, "patch_embed.proj.weight", "blocks.0.filter.complex_weight"),
    convert=convert_gfnet,
    models={"gfnet_ti": "GFNet(embed_dim=256, depth=12)", "gfnet_xs": "GFNet(embed_dim=384, depth=12)",
            "gfnet_s": "GFNet(embed_dim=384, depth=19)"},
    notes="renames (isotropic GFNet; the hierarchical GFNet-H models have no counterpart here)"))
