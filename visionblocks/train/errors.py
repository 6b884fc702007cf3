"""The one error type of ``visionblocks train``/``compare``: bad input the user can fix (the command line prints its
first line and exits with status 2)."""
from __future__ import annotations

__all__ = ["TrainError"]


class TrainError(ValueError):
    """Bad data, options, run directory or checkpoint: nothing was written or overwritten."""
