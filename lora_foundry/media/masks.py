"""Mask geometry on numpy arrays: any mask as bool, nearest-neighbour resizing (a mask stays a set
of pixels, never a blur), and a mask's bounding box."""

from __future__ import annotations

import numpy as np


def to_bool_mask(mask: np.ndarray) -> np.ndarray:
    """Any mask (bool, 0/1, 0/255, or an RGBA image's alpha) as a bool ``HxW`` array."""
    array = np.asarray(mask)
    if array.ndim == 3:
        array = array[..., -1] if array.shape[-1] in (2, 4) else array[..., 0]
    if array.dtype == bool:
        return array
    limit = 127 if array.dtype == np.uint8 else 0.5
    return array > limit

def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask to ``(height, width)``."""
    if mask.shape[:2] == tuple(size):
        return mask
    import cv2

    height, width = size
    resized = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(bool)

def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` of a mask's pixels (x1/y1 exclusive), or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
