"""Converters from the layouts of the papers' authors' own code for CNNs and re-parameterizable networks (issue 14):
ECA-Net (BangguWu/ECANet), ...

Each converter names the repository (and the commit its harness case was verified at: see docs/weights.md).
Nothing of the authors' code is here: only which of their tensors is which of ours.
"""
from __future__ import annotations

import re

import torch

from visionblocks.models.resnet import ResNet

from ._common import check_stride_3x3, has_all, has_any
from .authors import convert_attention_resnet
from .convert import Converter, register_converter
from .errors import ArchitectureMismatchError

__all__ = ["ECA", "convert_eca"]


# ----------------------------------------------------------------------------------------- ECA-Net (BangguWu/ECANet)
def _stage_kernel_sizes(keys_shapes, pattern: str) -> dict[int, int]:
    """``{stage: kernel size}`` of the first block of each stage whose ECA weight matches ``pattern``."""
    out: dict[int, int] = {}
    for k, shape in keys_shapes:
        m = re.fullmatch(pattern, k)
        if m:
            out.setdefault(int(m[1]), int(shape[-1]))
    return out


def convert_eca(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' ECA-ResNet (``models/eca_resnet.py``, torchvision's ResNet with the stride in the 3x3):
    ``layer<i>.<j>.eca.conv`` (the 1-D convolution, shape (1, 1, k)) is our ``stages.<i-1>.<j>.attn.conv``; the
    rest is torchvision's ResNet.  Their ResNet takes one kernel size per stage (``k_size``; the released
    ECA-Net50: 3, 5, 5, 7); a model with other kernel sizes is refused naming ``eca_kernel_sizes``."""
    theirs = _stage_kernel_sizes(((k, v.shape) for k, v in sd.items()), r"layer(\d+)\.\d+\.eca\.conv\.weight")
    ours = _stage_kernel_sizes(((k, v.shape) for k, v in model.state_dict().items()),
                               r"stages\.(\d+)\.\d+\.attn\.conv\.weight")
    want = tuple(theirs[i] for i in sorted(theirs))
    have = tuple(ours[i] for i in sorted(ours))
    if want != have:
        raise ArchitectureMismatchError(
            f"the checkpoint's ECA kernel sizes per stage are {want}, the model's {have}: build it with "
            f"eca_kernel_sizes={want}", options={"eca_kernel_sizes": want})
    return convert_attention_resnet(sd, model)


ECA = register_converter(Converter(
    name="authors.eca", source="authors: BangguWu/ECANet", model_types=(ResNet,),
    detect=lambda keys: has_any(keys, r"layer1\.0\.eca\.conv\.weight") and has_all(keys, "layer1.0.conv2.weight"),
    convert=convert_eca, priority=2, check=lambda model: check_stride_3x3(model, "The ECA-Net authors'"),
    models={"eca_resnet50": "eca_resnet50"},
    notes="renames (their eca module is our attn); needs stride_3x3=True and their per-stage kernel sizes "
          "(eca_kernel_sizes, released ECA-Net50: (3, 5, 5, 7))"))
