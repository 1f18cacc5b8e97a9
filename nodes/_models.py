"""What every model-loader node shares: the file list for its combo, where a chosen file is, its
IS_CHANGED value, and a small bounded cache of opened models (so a second loader node or another
graph naming the same file does not load the weights again)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..lora_foundry.models.registry import ModelSpec, model_identity, resolve
from . import _comfy

CACHE_SIZE = 2


class ModelCache:
    """At most ``CACHE_SIZE`` opened models per loader class, keyed by (file identity, device, ...)."""

    def __init__(self) -> None:
        self._models: OrderedDict[tuple[str, ...], Any] = OrderedDict()

    def get(self, key: tuple[str, ...], load: Any) -> Any:
        if key not in self._models:
            self._models[key] = load()
            while len(self._models) > CACHE_SIZE:
                self._models.popitem(last=False)
        self._models.move_to_end(key)
        return self._models[key]


def model_choices(spec: ModelSpec, installed: list[str] | None = None) -> list[str]:
    """Installed files first, then the published names (choosing a missing one says where to get it).

    Registers ``models/<folder>`` with ComfyUI first, so extra_model_paths.yaml entries count;
    ``installed`` overrides the listing (open_clip also accepts folders).
    """
    _comfy.register_model_folder(spec.folder)
    if installed is None:
        installed = _comfy.list_models(spec.folder)
    return installed + [name for name in spec.files if name not in installed]


def installed_path(spec: ModelSpec, name: str | None) -> Path:
    """The installed file ``name`` of ``spec`` in ComfyUI's models folders (or raises
    ``ModelMissingError`` saying which file to put in which folder)."""
    return resolve(spec, name, _comfy.model_folder_paths(spec.folder))


def file_state(spec: ModelSpec, name: str) -> str:
    """IS_CHANGED value: the file's name/size/mtime, or 'missing' (never raises)."""
    try:
        return model_identity(installed_path(spec, name))
    except (OSError, ValueError):
        return "missing"
