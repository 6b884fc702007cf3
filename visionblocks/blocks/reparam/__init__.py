"""Every module in this folder is imported so that its entries register themselves."""
from visionblocks._imports import import_submodules

import_submodules(__name__, __path__)
