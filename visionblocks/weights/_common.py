"""Small tools the converters share: key predicates, block-index flattening, architecture checks."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch.nn as nn

from .errors import ArchitectureMismatchError

__all__ = ["has_all", "has_any", "flat_block_index", "first_conv", "bottleneck_blocks", "check_stride_3x3",
           "modules_of", "linears_to_1x1"]


def has_all(keys: Sequence[str], *required: str) -> bool:
    ks = set(keys)
    return all(r in ks for r in required)


def has_any(keys: Iterable[str], pattern: str) -> bool:
    pat = re.compile(pattern)
    return any(pat.fullmatch(k) for k in keys)


def flat_block_index(keys: Iterable[str], pattern: str) -> dict[tuple[int, int], int]:
    """``{(stage, block): flat index}`` for the nested ``blocks.<stage>.<block>`` keys that ``pattern`` (a regex
    whose groups 1 and 2 are the stage and block numbers) matches, in network order."""
    pat = re.compile(pattern)
    pairs = sorted({(int(m.group(1)), int(m.group(2))) for k in keys if (m := pat.match(k))})
    return {p: i for i, p in enumerate(pairs)}


def first_conv(module: nn.Module) -> nn.Conv2d | None:
    return next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)


def modules_of(model: nn.Module, cls: type | tuple[type, ...]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, cls)]


def bottleneck_blocks(model: nn.Module) -> list[nn.Module]:
    from visionblocks.models.resnet import Bottleneck
    return modules_of(model, Bottleneck)


def check_stride_3x3(model: nn.Module, source: str) -> None:
    """Refuse a ResNet whose bottlenecks stride in the first 1x1 (He et al.) for a checkpoint of a network that
    strides in the 3x3 ("ResNet v1.5", torchvision's and timm's)."""
    for block in bottleneck_blocks(model):
        conv = first_conv(block.conv1)
        if conv is not None and tuple(conv.stride) != (1, 1):
            raise ArchitectureMismatchError(
                f"{source} ResNets stride in each bottleneck's 3x3 convolution (\"ResNet v1.5\"); this "
                f"{type(model).__name__} strides in the first 1x1 (He et al.): build it with stride_3x3=True "
                f"(create_model(..., stride_3x3=True)), or ask for the weights by name "
                f"(visionblocks.weights.create_pretrained), which does so", options={"stride_3x3": True})


def linears_to_1x1(sd: dict, own: dict) -> dict:
    """In place, and returned: each source ``nn.Linear`` weight (out, in) whose key is one of our 1x1 convolutions
    (out, in, 1, 1) reshaped to it (the gates' MLPs the sources write as linears on pooled vectors)."""
    for k, v in sd.items():
        if k in own and v.ndim == 2 and own[k].ndim == 4 and own[k].shape[2:] == (1, 1):
            sd[k] = v[:, :, None, None]
    return sd
