"""Collects the node classes of every ``nodes/<stage>.py`` module.

Modules are discovered rather than listed so each stage owns its file; a module that fails to
import is an error (raised), never a silently missing node.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def _collect() -> tuple[dict[str, Any], dict[str, str]]:
    classes: dict[str, Any] = {}
    names: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for key, cls in getattr(module, "NODE_CLASS_MAPPINGS", {}).items():
            if key in classes:
                raise RuntimeError(f"node {key!r} is defined twice (second time in nodes/{info.name}.py)")
            classes[key] = cls
        names.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}))
    return classes, names


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _collect()
