"""Import every module of a package so that its blocks/models register themselves."""
from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package_name: str, path) -> None:
    for mod in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{package_name}.{mod.name}")
