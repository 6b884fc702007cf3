"""Put any block into any network: :func:`insert` (after chosen modules, or at a paper's place with ``preset=``),
:func:`replace` (chosen modules swapped for a block built with their geometry; re-parameterizable blocks fold back
into the original layers) and :func:`lazy` (a block that takes its channel count from its first input).

Channel counts are read off the network (a probe forward with hooks), never typed; every surgery is verified (the
model's output shapes are unchanged) and reported (:class:`SurgeryReport`: the new modules' names and the parameters
added), and one that fails leaves the model exactly as it was (:class:`SurgeryError`, a ``ValueError`` naming the
module, the block and what was expected).  See docs/plug_in.md.
"""
from ._core import Selector, SurgeryError, SurgeryReport
from .insert import PRESETS, InsertedAfter, insert
from .lazy import LazyBlock, lazy
from .replace import AbsorbedNorm, RepSlot, replace

__all__ = ["AbsorbedNorm", "InsertedAfter", "LazyBlock", "PRESETS", "RepSlot", "Selector", "SurgeryError",
           "SurgeryReport", "insert", "lazy", "replace"]
