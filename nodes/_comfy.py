"""The only place nodes touch ComfyUI, imported lazily so nodes import (and test) without it.

Everything here degrades to a plain-Python behaviour when ComfyUI is absent: progress goes
nowhere, the output root is ``$LORA_FOUNDRY_OUTPUT`` or ``./out``, interrupts never happen, models
work where ``pick_device`` says and nobody is asked for memory.

Model memory (issue 11). Our models rest on the CPU and visit the GPU only inside
``ModelHandle.on_device()``; ``ComfyMemory`` is the manager it asks first:
``comfy.model_management.free_memory(size, device)`` (which unloads ComfyUI's idle models until
that much is free), then the handle moves the weights, works, moves them back, and
``soft_empty_cache()`` hands the freed blocks back to the driver for the next sampler. This is the
pattern of ComfyUI's own upscale-model node and of Acly's inpaint nodes.

Why not a ``comfy.model_patcher.ModelPatcher`` (``load_models_gpu``) for SAM 2, LaMa, open_clip and
RetinaFace, although ComfyUI would then see them:
- ComfyUI keeps what ``load_models_gpu`` loaded on the GPU after the node returns, until something
  else needs room; we want the weights back on the offload device when our node returns (the
  promise issue 11 asks for), so ComfyUI would have to be told to unload them right away, which
  is what free-memory-then-move already does without the bookkeeping.
- In low-VRAM mode ModelPatcher loads a model partially and casts the rest on the fly, which only
  works for layers built from ``comfy.ops``; ours are plain torch layers (and LaMa is TorchScript),
  so a partial load would leave layers on the CPU and fail with mixed devices.
- ONNX Runtime sessions (pose, expression classifiers) cannot be moved by anyone: they are opened on
  the GPU inside ``on_device()`` and dropped after (see ``models/handle.py``).
Where ComfyUI already wraps a model in a ModelPatcher (its CLIP_VISION, used by LF Embed Frames
(CLIP Vision)), we leave its lifetime to ComfyUI.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..lora_foundry.models.device import pick_device, pick_onnx_device
from ..lora_foundry.models.registry import MODELS_ENV
from ..lora_foundry.paths import OUTPUT_ROOT_ENV, default_output_root
from ..lora_foundry.read_roots import ReadRoots, operator_roots

CATEGORY = "LoRA Foundry"
INPUT_ROOT_ENV = "LORA_FOUNDRY_INPUT"


def _comfy_module(name: str) -> Any | None:
    """Import a ComfyUI module by name, or None outside ComfyUI."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class ComfyProgress:
    """Engine ``Progress`` that drives ComfyUI's progress bar and honours its interrupt.

    ``ProgressBar.update_absolute`` and ``throw_exception_if_processing_interrupted`` raise
    ComfyUI's interrupt exception; the engine is written so an exception there is always safe.
    """

    def __init__(self, node_id: str | None = None) -> None:
        self._node_id = node_id
        self._bar: Any = None
        self._total = -1
        self._utils = _comfy_module("comfy.utils")
        self._mm = _comfy_module("comfy.model_management")

    def update(self, done: int, total: int, preview: Any = None) -> None:
        if self._mm is not None:
            self._mm.throw_exception_if_processing_interrupted()
        if self._utils is None:
            return
        if self._bar is None or total != self._total:
            self._bar = self._utils.ProgressBar(max(total, 1), node_id=self._node_id)
            self._total = total
        self._bar.update_absolute(done, max(total, 1), preview)


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed cancel (no-op outside ComfyUI)."""
    mm = _comfy_module("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


def _comfy_folder(kind: str) -> Path | None:
    """ComfyUI's ``kind`` directory (output, temp, input, user: ``folder_paths.get_<kind>_directory``),
    resolved; None outside ComfyUI. Each root below says what stands in for it there."""
    folder_paths = _comfy_module("folder_paths")
    return None if folder_paths is None else Path(getattr(folder_paths, f"get_{kind}_directory")()).resolve()


def output_root() -> Path:
    """Root for everything we write: the operator's ``$LORA_FOUNDRY_OUTPUT``, else ComfyUI's
    output directory, else ``./out``."""
    if os.environ.get(OUTPUT_ROOT_ENV):
        return default_output_root()
    return _comfy_folder("output") or default_output_root()


def temp_root() -> Path:
    """ComfyUI's temp directory (previews), else ``<output root>/.previews``."""
    return _comfy_folder("temp") or output_root() / ".previews"


def input_root() -> Path | None:
    """ComfyUI's input directory, where users upload media; None outside ComfyUI."""
    return _comfy_folder("input")


def read_roots() -> ReadRoots:
    """The folders a workflow may read media from: ComfyUI's input folder (outside ComfyUI
    ``$LORA_FOUNDRY_INPUT``, else the current folder), the output folders (what ComfyUI already
    serves through /view, and where the pack's own outputs are), and the operator's extra roots
    from ``<user dir>/lora_foundry/read_roots.json``. Never anything a workflow names."""
    inputs = input_root() or Path(os.environ.get(INPUT_ROOT_ENV) or Path.cwd())
    return ReadRoots.of([inputs, output_root(), _comfy_folder("output"), *operator_roots(user_root())])


def user_root() -> Path:
    """ComfyUI's user directory (presets, operator config), else ``<output root>/.user``."""
    return _comfy_folder("user") or output_root() / ".user"


def ray_runner() -> Any | None:
    """The operator's Ray cluster, connected (``LF_RAY_ADDRESS``, else ``<user dir>/lora_foundry.json``;
    never a workflow input), or None to run on this machine (docs/scaling.md)."""
    from ..lora_foundry.scale import config

    return config.ray_runner(config.ray_address(user_dir=user_root()))


def model_folder_paths(folder: str) -> list[Path]:
    """Every folder ComfyUI knows for ``models/<folder>`` (extra_model_paths.yaml included)."""
    folder_paths = _comfy_module("folder_paths")
    if folder_paths is None:
        return []
    try:
        return [Path(p) for p in folder_paths.get_folder_paths(folder)]
    except KeyError:
        return []


def register_model_folder(folder: str) -> None:
    """Make ``models/<folder>`` known to ComfyUI so extra_model_paths.yaml can add to it."""
    folder_paths = _comfy_module("folder_paths")
    if folder_paths is None:
        return
    default = os.path.join(folder_paths.models_dir, folder)
    folder_paths.add_model_folder_path(folder, default)


def list_models(folder: str) -> list[str]:
    """File names ComfyUI lists in ``models/<folder>`` (for combo widgets); [] outside ComfyUI."""
    folder_paths = _comfy_module("folder_paths")
    if folder_paths is None:
        return []
    try:
        return list(folder_paths.get_filename_list(folder))
    except KeyError:
        return []


def shown_paths(text: str) -> str:
    """``text`` with the server's folders written relative to ComfyUI's base folder (``output/...``,
    ``models/lama``, ``custom_nodes/<pack>``): refusals go to every client of a shared server, and
    absolute install paths are the operator's business. Longest folders are replaced first, and only
    where a path starts (a value the client typed, like ``~user/srv/x``, is quoted as given)."""
    for folder, label in sorted(_known_folders().items(), key=lambda pair: -len(pair[0])):
        starts = r"(?<![^\s'\"(=:,\[])" + re.escape(folder)
        text = re.sub(starts + re.escape(os.sep), (label + "/" if label else "").replace("\\", "\\\\"), text)
        text = re.sub(starts + r"(?![\w.-])", label or ".", text)
    return text


@contextlib.contextmanager
def shown_to_clients() -> Iterator[None]:
    """Re-raise an error with server folders shown as ``shown_paths`` does; under ComfyUI (where the
    pack's module names are its install path) as the nearest built-in exception type, so the type
    name shows no path either. ComfyUI's own interrupt passes unchanged (its text has no path)."""
    try:
        yield
    except Exception as error:
        text = str(error)
        shown = shown_paths(text)
        module = type(error).__module__
        if shown == text and os.sep not in module:
            raise
        if os.sep in module:  # ComfyUI names the pack's modules by their install path
            builtin = next(kind for kind in type(error).__mro__ if kind.__module__ == "builtins")
            raise builtin(shown) from None
        if isinstance(error, OSError):  # its str() shows .filename, whatever args say
            raise type(error)(shown) from None
        error.args = (shown,)
        raise


def _known_folders() -> dict[str, str]:
    """Absolute folder -> how a client is shown it."""
    pack = Path(__file__).resolve().parents[1]
    known = {str(output_root()): "output", str(temp_root()): "temp", str(user_root()): "user",
             str(pack): f"custom_nodes/{pack.name}", str(Path.cwd() / "models"): "models"}
    if os.environ.get(MODELS_ENV):
        known[str(Path(os.environ[MODELS_ENV]).resolve())] = "models"
    folder_paths = _comfy_module("folder_paths")
    if folder_paths is not None:
        base = str(Path(folder_paths.base_path).resolve())
        known |= {base: "", str(Path(folder_paths.models_dir).resolve()): "models",
                  str(input_root()): "input", str(_comfy_folder("output")): "output"}
        for name, (paths, _) in getattr(folder_paths, "folder_names_and_paths", {}).items():
            known |= {str(Path(path).resolve()): f"models/{name}" for path in paths}
    elif os.environ.get(INPUT_ROOT_ENV):
        known[str(Path(os.environ[INPUT_ROOT_ENV]).resolve())] = "input"
    for number, root in enumerate(_operator_roots_or_none(), 1):  # the operator knows which is which
        known.setdefault(str(Path(root).resolve()), f"<read root {number}>")
    return {folder: label for folder, label in known.items() if len(folder) > 1}


def _operator_roots_or_none() -> list[Path]:
    """The operator's extra read roots; none when their file is malformed (that error is reported
    where the roots are read, not while another error is being shown)."""
    try:
        return operator_roots(user_root())
    except ValueError:
        return []


def send_event(event: str, data: dict[str, Any]) -> None:
    """Send a custom websocket event to the front end (loss curve, live previews)."""
    server = _comfy_module("server")
    if server is None or getattr(server.PromptServer, "instance", None) is None:
        return
    server.PromptServer.instance.send_sync(event, data)


def add_get_route(path: str, handler: Any) -> bool:
    """Serve ``GET path`` from ComfyUI's web server (also under /api); False outside ComfyUI.
    Routes must be added while custom nodes are imported: ComfyUI mounts them right after."""
    server = _comfy_module("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None:
        return False
    instance.routes.get(path)(handler)
    return True


def apply_lora(model: Any, clip: Any, lora_name: str, strength_model: float, strength_clip: float
               ) -> tuple[Any, Any]:
    """Apply a LoRA from models/loras with ComfyUI's own ``LoraLoader`` (its key mapping, its cache)."""
    comfy_nodes = _comfy_module("nodes")
    if comfy_nodes is None or not hasattr(comfy_nodes, "LoraLoader"):
        raise RuntimeError("applying a LoRA needs ComfyUI (its LoraLoader node)")
    return comfy_nodes.LoraLoader().load_lora(model, clip, lora_name, strength_model, strength_clip)


def _required(name: str) -> Any:
    """A ComfyUI module that the calling node cannot work without (it was handed ComfyUI objects)."""
    module = _comfy_module(name)
    if module is None:
        raise RuntimeError(f"this node needs ComfyUI ({name} is not importable)")
    return module


def lora_key_map(model: Any, clip: Any) -> dict[str, Any]:
    """ComfyUI's map from LoRA module names to the weights of ``model`` and ``clip`` (either may be None)."""
    lora = _required("comfy.lora")
    key_map: dict[str, Any] = {}
    if model is not None:
        key_map = lora.model_lora_keys_unet(model.model, key_map)
    if clip is not None:
        key_map = lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
    return key_map


def convert_lora(state: dict[str, Any]) -> dict[str, Any]:
    """A LoRA state dict in the key format ComfyUI loads (its own converter)."""
    return _required("comfy.lora_convert").convert_lora(state)


def lora_patches(converted: dict[str, Any], to_load: dict[str, Any]) -> dict[Any, Any]:
    """The patches ComfyUI builds for the modules in ``to_load`` (what would really apply)."""
    return _required("comfy.lora").load_lora(converted, to_load, log_missing=False)


def load_lora_for_models(model: Any, clip: Any, state: dict[str, Any], strength_model: float,
                         strength_clip: float) -> tuple[Any, Any]:
    """``model`` and ``clip`` with a LoRA applied, by ComfyUI's own loader."""
    return _required("comfy.sd").load_lora_for_models(model, clip, state, strength_model, strength_clip)


class ComfyMemory:
    """``MemoryManager`` (models/handle.py) backed by ComfyUI's model management; asks no one
    outside ComfyUI. Holds nothing: the module is looked up at each call."""

    def make_room(self, size: int, device: str) -> None:
        mm = _comfy_module("comfy.model_management")
        target = _as_comfy_device(mm, device) if mm is not None else None
        if target is not None:
            mm.free_memory(size, target)

    def released(self, device: str) -> None:
        mm = _comfy_module("comfy.model_management")
        if mm is not None:
            mm.soft_empty_cache()


def _as_comfy_device(mm: Any, device: str) -> Any | None:
    """``device`` as ComfyUI names it, or None when ComfyUI keeps no models on that kind of device
    (an ONNX model on "cuda" while ComfyUI runs with --cpu: nothing to free, and asking would query
    a GPU that is not there). ``free_memory`` unloads the models whose device *equals* the one
    asked about, and ComfyUI's are indexed ("cuda:0"), so a bare "cuda" becomes ComfyUI's own."""
    import torch

    target, own = torch.device(device), mm.get_torch_device()
    if target.type != own.type:
        return None
    return own if target.index is None else target


def torch_device(preference: str) -> str:
    """The torch device a model works on: "auto" is ComfyUI's own device (it honours --cpu,
    --cuda-device, DirectML ...), else the best one torch sees; an explicit choice is checked."""
    mm = _comfy_module("comfy.model_management")
    if preference == "auto" and mm is not None:
        return str(mm.get_torch_device())
    return pick_device(preference)


def onnx_device(preference: str) -> str:
    """The onnxruntime device: "auto" stays on the CPU when ComfyUI computes there (--cpu)."""
    mm = _comfy_module("comfy.model_management")
    if preference == "auto" and mm is not None and mm.get_torch_device().type == "cpu":
        return "cpu"
    return pick_onnx_device(preference)
