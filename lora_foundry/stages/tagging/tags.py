"""The "tags" union the caption builder reads, and the subject box taggers look at.

Each tagging stage (pose, faces/expression, lighting) writes its own annotation (``pose_tags``,
``expression``, ``lighting_tags``) AND the union ``tags``: the tags already visible from ancestor
stages (``Workspace.tags``) plus its own, in order, without duplicates. Since ``ws.annotations``
lets the nearest stage win, the union keeps the earlier stages' tags visible to the caption builder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def union(*groups: Iterable[str] | None) -> list[str]:
    """Tags from all groups, first occurrence order, empty and duplicate tags dropped."""
    out: list[str] = []
    seen: set[str] = set()  # a tagger at a low threshold gives thousands of tags per image
    for group in groups:
        for tag in group or ():
            tag = str(tag).strip()
            if tag and tag not in seen:
                seen.add(tag)
                out.append(tag)
    return out


def merged(existing: dict[int, list[str]], item_id: int, new: Sequence[str], parent: int | None = None
           ) -> list[str]:
    """The item's inherited tags (or its parent's, for a new crop) plus ``new``."""
    base = existing.get(item_id) or (existing.get(parent, []) if parent is not None else [])
    return union(base, new)


def subject_box(rgba: np.ndarray) -> tuple[float, float, float, float]:
    """Bounding box of alpha > 0 in an RGBA array, or the whole image."""
    h, w = rgba.shape[:2]
    if rgba.ndim == 3 and rgba.shape[2] == 4:
        ys, xs = np.nonzero(rgba[..., 3] > 0)
        if len(xs):
            return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    return 0.0, 0.0, float(w), float(h)
