"""What every model-loader node shares: the file list for its combo, where a chosen file is, its
IS_CHANGED value, and a small bounded cache of opened models (so a second loader node or another
graph naming the same file does not load the weights again).

``ModelLoader`` is the base of the loader nodes (``nodes/loaders.py``): a loader declares its spec,
its settings after ``model_name`` and how ``models/`` opens the file; the base resolves the file
(a missing one fails at once, naming file and folder, before any backend is imported), asks
``models/`` for the identity, and caches the opened ``ModelHandle``. Handles rest on the CPU (the
offload device) and visit the compute device only inside ``on_device()``, asking ComfyUI for
room first (``_comfy.ComfyMemory``), so the caches hold CPU copies only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..lora_foundry.cache import BoundedCache
from ..lora_foundry.models.device import DEVICE_CHOICES
from ..lora_foundry.models.handle import ModelHandle
from ..lora_foundry.models.links import missing_links
from ..lora_foundry.models.registry import ModelSpec, model_identity, resolve
from . import _comfy
from ._declare import Input, choice

CACHE_SIZE = 2
MISSING_ROUTE = "/lora_foundry/missing_models"  # js/missing_models.js asks it when a workflow opens
MAX_ENTRIES = 64
ONNX_DEVICE_CHOICES = ("auto", "cpu", "cuda")


def torch_device_input() -> Input:
    """The ``device`` setting of a torch model's loader."""
    return choice(DEVICE_CHOICES, "Where the model works; between nodes it rests on the CPU. auto = ComfyUI's "
                  "device (CUDA, then Apple MPS, else CPU when run outside ComfyUI).", "auto")


def onnx_device_input() -> Input:
    """The ``device`` setting of an ONNX model's loader."""
    return choice(ONNX_DEVICE_CHOICES, "onnxruntime provider (a CUDA session is opened for each run and "
                  "closed after it; the cached one stays on the CPU).", "auto")


def model_choices(spec: ModelSpec, installed: list[str] | None = None) -> list[str]:
    """Installed files first, then the published names (choosing a missing one says where to get it).

    Registers ``models/<folder>`` with ComfyUI first, so extra_model_paths.yaml entries count;
    ``installed`` overrides the listing (open_clip also accepts folders).
    """
    _comfy.register_model_folder(spec.folder)
    if installed is None:
        installed = _comfy.list_models(spec.folder)
    return installed + [name for name in spec.files if name not in installed]


def model_input(spec: ModelSpec, tooltip: str, names: Callable[[], list[str]] | None = None) -> Input:
    """A loader's ``model_name`` combo, listed each time ComfyUI asks: ``model_choices`` of ``spec``,
    or ``names`` for loaders whose folder holds more than plain files."""
    return choice(names or functools.partial(model_choices, spec), tooltip)


def installed_path(spec: ModelSpec, name: str | None) -> Path:
    """The installed file ``name`` of ``spec`` in ComfyUI's models folders, by the engine's one
    resolver of model names (``registry.resolve``: a name, never a path; the same answer for an
    outside and a missing name), or raises ``ModelMissingError``."""
    return resolve(spec, name, _comfy.model_folder_paths(spec.folder))


class ModelLoader:
    """Base of the loader nodes. Subclasses set ``SPEC`` (and ``ONNX`` for onnxruntime models),
    declare ``model_name`` (``model_input``) then their settings in ``@node(inputs=...)``, and must
    say how to ``open`` a file."""

    SPEC: ClassVar[ModelSpec]
    ONNX: ClassVar[bool] = False
    _cache: ClassVar[BoundedCache[ModelHandle]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each loader class gets its own cache of ``CACHE_SIZE`` opened models."""
        super().__init_subclass__(**kwargs)
        cls._cache = BoundedCache(CACHE_SIZE)

    @classmethod
    def settings(cls) -> dict[str, Input]:
        """The declared inputs after ``model_name``, in order (saved workflows store widget values by
        position)."""
        return {name: spec for name, spec in cls.INPUTS.required.items() if name != "model_name"}

    @classmethod
    def locate(cls, model_name: str) -> Path:
        """The installed file (or folder) for ``model_name``; raises ``ModelMissingError``."""
        return installed_path(cls.SPEC, model_name)

    @classmethod
    def identity(cls, path: Path, settings: dict[str, Any]) -> str:
        """The model's identity, as ``models/`` computes it for the handle."""
        return model_identity(path)

    @classmethod
    def VALIDATE_INPUTS(cls, model_name: str) -> bool | str:
        """"put FILE in FOLDER (from URL)" when the file is not installed. ComfyUI validates every node
        before it runs any, so a workflow with several loaders names every missing file in one answer
        instead of stopping at the first loader it reaches."""
        try:
            cls.locate(model_name)
        except (OSError, ValueError) as error:
            return str(error)
        return True

    @classmethod
    def IS_CHANGED(cls, model_name: str, *values: Any, unique_id: str | None = None, **named: Any) -> str:
        """The file's identity and the settings, or "missing|..." (never raises)."""
        settings = cls.settings_of(values, named)
        try:
            state = cls.identity(cls.locate(model_name), settings)
        except (OSError, ValueError):
            state = "missing"
        return "|".join([state, *(str(value) for value in settings.values())])

    def load(self, model_name: str, *values: Any, unique_id: str | None = None, **named: Any
             ) -> tuple[ModelHandle]:
        """The cached handle for this file and these settings, or a newly opened one."""
        settings = self.settings_of(values, named)
        path = self.locate(model_name)
        device = (_comfy.onnx_device if self.ONNX else _comfy.torch_device)(settings["device"])
        key = (self.identity(path, settings), device, *settings.values())
        return (self._cache.get(key, lambda: self._opened(path, device, settings)),)

    def _opened(self, path: Path, device: str, settings: dict[str, Any]) -> ModelHandle:
        handle = self.open(path, device, settings)
        handle.memory = _comfy.ComfyMemory()
        return handle

    def open(self, path: Path, device: str, settings: dict[str, Any]) -> ModelHandle:
        """Open ``path`` through ``models/``: resting on the CPU, working on ``device``."""
        raise NotImplementedError

    @classmethod
    def settings_of(cls, values: Sequence[Any], named: dict[str, Any]) -> dict[str, Any]:
        """The settings by name in declared order: given by position, by name, else the default."""
        declared = cls.settings()
        unknown = set(named) - set(declared)
        if len(values) > len(declared) or unknown:
            raise TypeError(f"{cls.__name__} takes the settings {list(declared)}; got {len(values)} values "
                            f"and {sorted(unknown)}")
        found = dict(zip(declared, values, strict=False))
        for name, spec in declared.items():
            if name not in found:
                found[name] = named.get(name, spec.default_value())
        return found


async def serve_missing_models(request: Any) -> Any:
    """Which of a node's ``properties.models`` entries (``?entries=<JSON list>``) are not installed,
    with their companion files (``links.missing_links``), for the front end's Missing Models dialog."""
    from aiohttp import web

    try:
        entries = json.loads(request.query.get("entries", "[]"))
    except ValueError:
        raise web.HTTPBadRequest(text="entries must be a JSON list") from None
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES or not all(isinstance(e, dict) for e in entries):
        raise web.HTTPBadRequest(text=f"entries must be a JSON list of at most {MAX_ENTRIES} objects")
    return web.json_response(missing_links(entries, _comfy.model_folder_paths))


def register_routes() -> bool:
    """Add the missing-models route to ComfyUI's server (a registration, no work; False outside)."""
    return _comfy.add_get_route(MISSING_ROUTE, serve_missing_models)
