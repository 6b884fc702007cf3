"""Blocks, one file each, in family folders: attention, conv, reparam, mlp."""
from visionblocks._imports import import_submodules

import_submodules(__name__, __path__)
