"""The errors a checkpoint load raises; every one is a ``ValueError`` naming what is wrong."""
from __future__ import annotations

__all__ = ["CheckpointError", "ChecksumError", "LayoutError", "ArchitectureMismatchError", "StateDictMismatchError"]


class CheckpointError(ValueError):
    """A checkpoint cannot be read or loaded; nothing was loaded into the model."""


class ChecksumError(CheckpointError):
    """The file's sha256 is not the expected one."""


class LayoutError(CheckpointError):
    """The checkpoint's key layout is not one this model can load (unknown, or another model's)."""


class ArchitectureMismatchError(CheckpointError):
    """The checkpoint is of a differently configured network; ``options`` are the constructor arguments that
    build the matching one (e.g. ``{"stride_3x3": True}``)."""

    def __init__(self, message: str, options: dict | None = None):
        super().__init__(message)
        self.options = dict(options or {})


class StateDictMismatchError(CheckpointError):
    """Keys missing from / unexpected in the checkpoint, or tensors of the wrong shape; each is named."""

    def __init__(self, message: str, missing: list[str] = (), unexpected: list[str] = (),
                 mismatched: list[tuple[str, tuple, tuple]] = ()):
        super().__init__(message)
        self.missing_keys = list(missing)
        self.unexpected_keys = list(unexpected)
        self.mismatched = list(mismatched)
