"""The committed manifests of source layouts (``manifests/*.json``, written by ``tools/weights_harness.py``).

Each manifest names one source network (source, version, model, arguments), the model of ours it converts into
(registry name and arguments), the measured float64 difference between the two on the same input after
conversion, and the source state dict's key names and shapes.  :func:`manifest_state_dict` rebuilds that state
dict with empty (meta) tensors, so the test-suite converts and strictly loads every source layout without the
source installed and without allocating weights.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch

__all__ = ["MANIFEST_DIR", "manifest_names", "read_manifest", "manifest_state_dict"]

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"


def manifest_names() -> list[str]:
    """Sorted manifest ids (``"<converter>--<source model>"``)."""
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.json"))


@lru_cache(maxsize=None)
def _read(name: str) -> dict:
    return json.loads((MANIFEST_DIR / f"{name}.json").read_text())


def read_manifest(name: str) -> dict:
    """The manifest ``name`` as a dict (``keys`` is a list of ``[key, shape]``)."""
    if not (MANIFEST_DIR / f"{name}.json").is_file():
        raise KeyError(f"no manifest {name!r}; known: {', '.join(manifest_names())}")
    return dict(_read(name))


def manifest_state_dict(name: str, device: str | torch.device = "meta",
                        dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The source layout of manifest ``name`` as a state dict of empty tensors (``num_batches_tracked`` as int64)."""
    out = {}
    for key, shape in read_manifest(name)["keys"]:
        dt = torch.int64 if key.endswith("num_batches_tracked") else dtype
        out[key] = torch.empty(shape, dtype=dt, device=device)
    return out
