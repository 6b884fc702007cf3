"""Blocks, one file each, in family folders: attention, conv, reparam, mlp.  Importing a family registers its
blocks."""
from . import attention, conv, mlp, reparam

__all__ = ["attention", "conv", "mlp", "reparam"]
