"""Shared helpers for tagging stages: the "tags" union the caption builder reads, image loading.

Each tagging stage (pose, faces/expression, lighting) writes its own annotation (``pose_tags``,
``expression``, ``lighting_tags``) AND the union ``tags``: the tags already visible from ancestor
stages plus its own, in order, without duplicates. Since ``ws.annotations`` lets the nearest
stage win, the union keeps the earlier stages' tags visible to the caption builder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..workspace import Handle, Workspace


def union(*groups: Iterable[str] | None) -> list[str]:
    """Tags from all groups, first occurrence order, empty and duplicate tags dropped."""
    out: list[str] = []
    for group in groups:
        for tag in group or ():
            tag = str(tag).strip()
            if tag and tag not in out:
                out.append(tag)
    return out


def inherited_tags(ws: Workspace, handle: Handle) -> dict[int, list[str]]:
    """``{item id: tags}`` visible from ``handle`` and its ancestors."""
    return {k: list(v or []) for k, v in ws.annotations(handle, "tags").items()}


def merged(existing: dict[int, list[str]], item_id: int, new: Sequence[str], parent: int | None = None
           ) -> list[str]:
    """The item's inherited tags (or its parent's, for a new crop) plus ``new``."""
    base = existing.get(item_id) or (existing.get(parent, []) if parent is not None else [])
    return union(base, new)


def load_array(path: Path, alpha: bool = False) -> np.ndarray:
    """RGB (or RGBA when ``alpha`` and the file has one) uint8 array of an image file."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
        return np.asarray(img.convert("RGBA" if alpha and has_alpha else "RGB"))


def subject_box(rgba: np.ndarray) -> tuple[float, float, float, float]:
    """Bounding box of alpha > 0 in an RGBA array, or the whole image."""
    h, w = rgba.shape[:2]
    if rgba.ndim == 3 and rgba.shape[2] == 4:
        ys, xs = np.nonzero(rgba[..., 3] > 0)
        if len(xs):
            return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    return 0.0, 0.0, float(w), float(h)


def on_grey(rgba: np.ndarray) -> np.ndarray:
    """RGB uint8: an RGBA array composited on neutral grey (RGB passes through)."""
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        return rgba
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return (rgba[..., :3].astype(np.float32) * a + 128.0 * (1 - a)).round().astype(np.uint8)


def box_of(ws: Workspace, handle: Handle) -> dict[int, Any]:
    """Boxes other stages gave items (annotation ``box`` as [x1, y1, x2, y2]), if any."""
    return ws.annotations(handle, "box")
