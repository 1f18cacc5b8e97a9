"""The Python type each socket type carries, ours and ComfyUI's core ones, checked every time a node is called.

ComfyUI checks the type of a *link* (an LF_FRAMES output into an LF_FRAMES input), but a workflow
in the API format may give any input a literal value instead of a link, and ComfyUI passes it
through for custom types. ``"dataset": "/some/dir"`` for an LF_DATASET input used to bypass the
dataset_path confinement and write a dataset.toml whose image_dir pointed at that folder, and a
string on LF Train LECO's MODEL ended in ``'str' object has no attribute 'clone'``. So
``@node`` (``_declare.py``) checks every socket input against this table before the node runs, and
a literal is refused with a message naming the node, the input and what should be connected.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..lora_foundry.choices import quoted
from ..lora_foundry.kohya.dataset import Dataset, SubsetSource
from ..lora_foundry.models.handle import ModelHandle
from ..lora_foundry.musubi.dataset import VideoDataset
from ..lora_foundry.workspace import Handle


def _is(value: Any, cls: type) -> bool:
    """``isinstance``, also across two imports of the engine (the pack's ``<pack>.lora_foundry`` and
    an installed ``lora_foundry``, as in tests and scripts): same class name, same engine module.
    A literal from a workflow (str, number, list, dict) never matches either way."""
    kind = type(value)
    engine_module = cls.__module__.rpartition("lora_foundry.")[2]
    return isinstance(value, cls) or (kind.__qualname__ == cls.__qualname__
                                      and kind.__module__.endswith("lora_foundry." + engine_module))


def _is_stack(value: Any) -> bool:
    """``LORA_STACK`` (shared with other packs): a list of (lora_name, model_strength, clip_strength)."""
    return isinstance(value, list) and all(
        isinstance(entry, (tuple, list)) and len(entry) >= 3 and isinstance(entry[0], str)
        and all(isinstance(strength, (int, float)) for strength in entry[1:3]) for entry in value)


_LITERALS = (str, bytes, int, float, bool, list, dict, tuple)  # what a workflow's JSON can hold


def _tensor(value: Any, dims: tuple[int, ...]) -> bool:
    """A tensor (torch, or anything with ``shape``/``dtype`` that is no JSON literal) of ``dims`` dimensions."""
    shape = getattr(value, "shape", None)
    return (not isinstance(value, _LITERALS) and hasattr(value, "dtype") and shape is not None
            and len(shape) in dims)


def _object(*methods: str) -> Callable[[Any], bool]:
    """ComfyUI's model objects (ModelPatcher, CLIP, VAE, ClipVisionModel) by the methods we call on them:
    never a literal. Checked by shape, not class, so the engine never imports ComfyUI."""
    return lambda value: not isinstance(value, _LITERALS) and all(callable(getattr(value, m, None)) for m in methods)


def _conditioning(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(entry, (list, tuple)) and len(entry) == 2 and _tensor(entry[0], (2, 3, 4))
        and isinstance(entry[1], dict) for entry in value)


CORE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "IMAGE": lambda value: _tensor(value, (4,)),
    "MASK": lambda value: _tensor(value, (2, 3)),
    "LATENT": lambda value: isinstance(value, dict) and _tensor(value.get("samples"), (4, 5)),
    "CONDITIONING": _conditioning,
    "MODEL": _object("clone"),
    "CLIP": _object("clone", "tokenize"),
    "VAE": _object("decode", "encode"),
    "CLIP_VISION": _object("encode_image"),
}
CHECKS: dict[str, Callable[[Any], bool]] = {
    **CORE_CHECKS,
    "LF_FRAMES": lambda value: _is(value, Handle),
    "LF_DATASET": lambda value: _is(value, Dataset),
    "LF_SUBSETS": lambda value: isinstance(value, list) and all(_is(s, SubsetSource) for s in value),
    "LF_CLIPS": lambda value: _is(value, Handle),
    "LF_VIDEO_DATASET": lambda value: _is(value, VideoDataset),
    "LORA_STACK": _is_stack,
}
PRODUCERS = {
    "LF_FRAMES": "an LF_FRAMES output (LF Load Video Frames, LF Load Image Folder, ...)",
    "LF_DATASET": "the dataset output of LF Write Kohya Dataset",
    "LF_SUBSETS": "the subsets output of LF Dataset Subset",
    "LF_CLIPS": "a clips output (LF Cut Clips, LF Filter Clips, LF Caption Clips)",
    "LF_VIDEO_DATASET": "the video_dataset output of LF Write Video Dataset",
    "LORA_STACK": "a LORA_STACK output (a list of (lora_name, model_strength, clip_strength))",
    **{kind: f"a {kind} output (e.g. of ComfyUI's own loaders)" for kind in CORE_CHECKS},
}


class SocketTypeError(TypeError):
    """A socket input got something no node produces (a literal typed into a workflow)."""


def check_for(kind: str) -> Callable[[Any], bool] | None:
    """The check for a socket type: the table above, any ``LF_*_MODEL`` is a ``ModelHandle``."""
    if kind in CHECKS:
        return CHECKS[kind]
    if kind.startswith("LF_") and kind.endswith("_MODEL"):
        return lambda value: _is(value, ModelHandle)
    return None


def socket_kinds(cls: type) -> dict[str, str]:
    """Input name -> socket type for every input of ``cls`` that has a check: from the ``@node``
    declaration (no folder is listed to find out), else from a hand-written ``INPUT_TYPES``."""
    declared = getattr(cls, "INPUTS", None)
    if declared is not None:
        types = {name: spec.kind for section in declared.sections().values() for name, spec in section.items()}
    else:
        listed = cls.INPUT_TYPES()
        types = {name: spec[0] for section in ("required", "optional")
                 for name, spec in listed.get(section, {}).items() if isinstance(spec[0], str)}
    return {name: kind for name, kind in types.items() if check_for(kind) is not None}


def check_sockets(cls: type, method: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> None:
    """Raise ``SocketTypeError`` when a socket input holds something of the wrong type."""
    kinds = socket_kinds(cls)
    if not kinds:
        return
    bound = inspect.signature(method).bind_partial(*args, **kwargs).arguments
    as_lists = bool(getattr(cls, "INPUT_IS_LIST", False))
    for name, kind in kinds.items():
        value = bound.get(name)
        values = value if as_lists and isinstance(value, list) else [value]
        check = check_for(kind)
        for one in values:
            if one is not None and not check(one):
                raise SocketTypeError(
                    f"{getattr(cls, 'DISPLAY_NAME', cls.__name__)}: input '{name}' must be connected to "
                    f"{PRODUCERS.get(kind, f'an {kind} output')}; got {type(one).__name__} {quoted(one, 80)} (a value "
                    "typed into the workflow is not accepted for this input)")
