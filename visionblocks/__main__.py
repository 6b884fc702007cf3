"""``python -m visionblocks``: the command line (see :mod:`visionblocks.cli`)."""
import sys

from .cli import main

__all__: list[str] = []

sys.exit(main())
