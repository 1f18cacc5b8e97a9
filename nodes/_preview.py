"""The one way a node shows pictures: ``ui.images`` entries, and the files they point at.

ComfyUI shows ``{"filename", "subfolder", "type"}`` entries under a node, serving files from its
temp folder ("temp") or its output folder ("output") only. Pictures made for a preview (contact
sheets, thumbnails, grids) are written here, atomically (``images.save_image``) into
``<temp>/lora_foundry_previews``; a picture whose file is already there (same name: the names carry
the stage key, or the pixels' digest, ``content_name``) is not made again. Files a run wrote anyway
(kohya's samples, a dataset's images) are shown where they are when ComfyUI can serve them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..lora_foundry.media import images
from . import _comfy

PREVIEW_FOLDER = "lora_foundry_previews"

Picture = Any | Callable[[], Any]
"""RGB(A) uint8 pixels, or a function that makes them (called only when the file is missing)."""


def show_pictures(pictures: Iterable[tuple[str, Picture]]) -> list[dict[str, str]]:
    """Write each ``(name, picture)`` as ``<name>.png`` in the preview folder; their ``ui.images`` entries."""
    temp = _comfy.temp_root()
    folder = temp / PREVIEW_FOLDER
    shown = []
    for name, picture in pictures:
        target = folder / f"{name}.png"
        if not target.exists():
            images.save_image(picture() if callable(picture) else picture, target, png_compress_level=1)
        shown.append(_entry(target, temp, "temp"))
    return shown


def content_name(prefix: str, pixels: Any) -> str:
    """``<prefix>_<digest>``: a preview made fresh each run (not from a stage) named by its pixels,
    so running the same graph again shows the same file instead of adding another to temp."""
    array = np.ascontiguousarray(pixels)
    digest = hashlib.sha256(repr((array.shape, array.dtype.str)).encode() + array.tobytes()).hexdigest()
    return f"{prefix}_{digest[:16]}"


def show_files(paths: Sequence[Path]) -> list[dict[str, str]]:
    """Entries for files already under ComfyUI's output folder (others cannot be served: skipped)."""
    root = _comfy.output_root()
    resolved = (path.resolve() for path in paths)
    return [_entry(path, root, "output") for path in resolved if root in path.parents]


def _entry(path: Path, root: Path, kind: str) -> dict[str, str]:
    relative = path.relative_to(root)
    return {"filename": relative.name, "subfolder": relative.parent.as_posix(), "type": kind}
