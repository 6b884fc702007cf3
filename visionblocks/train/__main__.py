"""``python -m visionblocks.train {train,compare} ...`` (also under ``torchrun -m visionblocks.train``)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
