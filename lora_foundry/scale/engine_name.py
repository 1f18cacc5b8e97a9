"""Units that a Ray worker can import, whatever name the driver imported the engine under.

Ray sends a unit's function and payload by module name. The command line imports the engine as
``lora_foundry``, but ComfyUI imports the node pack under a name made from its folder (e.g.
``custom_nodes.lora_foundry``), so the engine there is ``<pack>.lora_foundry`` and a worker could
not import what a node sent. Before a unit leaves the driver it is rebuilt from the engine under
its top-level name (``top_level_engine`` loads this very folder as ``lora_foundry`` when nothing
has yet), and what comes back is rebuilt under the driver's name again. Workers import
``lora_foundry`` from the folder the driver ships them (``ray.init(runtime_env={"py_modules":
[...]})``, see ray_runner.py), so they run the driver's version of the engine.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import pickle
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

TOP = "lora_foundry"
ENGINE = __name__.rsplit(".scale.", 1)[0]
"""The name this copy of the engine was imported under: ``lora_foundry`` or ``<pack>.lora_foundry``."""

ENGINE_DIR = Path(__file__).resolve().parents[1]


def top_level_engine() -> ModuleType:
    """The engine as ``lora_foundry``: already imported, or this folder loaded under that name."""
    loaded = sys.modules.get(TOP)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(TOP, ENGINE_DIR / "__init__.py",
                                                  submodule_search_locations=[str(ENGINE_DIR)])
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the engine folder {ENGINE_DIR} as {TOP}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[TOP] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(TOP, None)
        raise
    return module


def top_level(module: str, name: str) -> Any:
    """``name`` from engine module ``module`` (e.g. "scale.ray_runner"), under the top-level name."""
    top_level_engine()
    return getattr(importlib.import_module(f"{TOP}.{module}"), name)


class _Renamer(pickle.Unpickler):
    """Finds every class and function of engine ``old`` in engine ``new`` instead."""

    def __init__(self, data: bytes, old: str, new: str) -> None:
        super().__init__(io.BytesIO(data))
        self.old, self.new = old, new

    def find_class(self, module: str, name: str) -> Any:
        if module == self.old or module.startswith(self.old + "."):
            module = self.new + module[len(self.old):]
        return super().find_class(module, name)


def renamed(value: Any, old: str, new: str) -> Any:
    """``value`` rebuilt with engine ``old``'s classes and functions taken from engine ``new``.

    A round trip through pickle in this process, of objects this process just made (units,
    their payloads, their results): nothing read from a file or a peer is unpickled here.
    """
    if old == new:
        return value
    if new == TOP:
        top_level_engine()
    return _Renamer(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), old, new).load()


def to_workers(value: Any) -> Any:
    """A unit (or anything sent with it) as workers can import it: under ``lora_foundry``."""
    return renamed(value, ENGINE, TOP)


def from_workers(value: Any) -> Any:
    """What a worker returned, under the name this driver imported the engine as."""
    return renamed(value, TOP, ENGINE)
