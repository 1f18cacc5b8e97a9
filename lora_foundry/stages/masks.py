"""Masks and images between numpy (the engine) and ComfyUI's IMAGE/MASK tensors (interop).

ComfyUI passes IMAGE as float32 ``[B,H,W,C]`` in 0..1 and MASK as float32 ``[B,H,W]``; the engine
works on uint8 ``HxWx3``/``HxWx4`` arrays and bool ``HxW`` masks. These helpers convert both ways
so users can bring other packs' masks in and take ours out, and resize masks to frames with
nearest-neighbour sampling (a mask stays a set of pixels, never a blur).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def images_to_tensor(images: Sequence[np.ndarray], size: tuple[int, int] | None = None) -> Any:
    """uint8 ``HxWx3`` (or ``x4``) arrays -> IMAGE ``[B,H,W,C]`` float 0..1.

    A batch must share one size: ``size=(height, width)`` resizes every image to it (area
    interpolation); without it the first image's size is used and others are resized to match.
    """
    import torch

    if not images:
        raise ValueError("no images to convert")
    height, width = size or images[0].shape[:2]
    batch = [resize_image(image, (height, width)) for image in images]
    return torch.from_numpy(np.stack(batch).astype(np.float32) / 255.0)


def tensor_to_images(tensor: Any) -> list[np.ndarray]:
    """IMAGE ``[B,H,W,C]`` (or one ``[H,W,C]``) float 0..1 -> uint8 arrays."""
    array = tensor.detach().cpu().float().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"expected an IMAGE batch [B,H,W,C], got shape {array.shape}")
    return [np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8) for frame in array]


def masks_to_tensor(masks: Sequence[np.ndarray], size: tuple[int, int] | None = None) -> Any:
    """bool/uint8 ``HxW`` masks -> MASK ``[B,H,W]`` float in {0,1} (resized nearest to one size)."""
    import torch

    if not masks:
        raise ValueError("no masks to convert")
    height, width = size or masks[0].shape[:2]
    batch = [resize_mask(to_bool_mask(mask), (height, width)) for mask in masks]
    return torch.from_numpy(np.stack(batch).astype(np.float32))


def tensor_to_masks(tensor: Any, threshold: float = 0.5) -> list[np.ndarray]:
    """MASK ``[B,H,W]`` (or ``[H,W]``) -> bool arrays, a pixel is in when its value > threshold."""
    array = tensor.detach().cpu().float().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise ValueError(f"expected a MASK batch [B,H,W], got shape {array.shape}")
    return [frame > threshold for frame in array]


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


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 image to ``(height, width)`` (area when shrinking, linear when growing)."""
    if image.shape[:2] == tuple(size):
        return image
    import cv2

    height, width = size
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` of a mask's pixels (x1/y1 exclusive), or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def letterbox(image: np.ndarray, side: int, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Fit an RGB image into a ``side`` x ``side`` square (aspect kept, bars of ``color``)."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = resize_image(image[..., :3], (new_h, new_w))
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = color
    top, left = (side - new_h) // 2, (side - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas
