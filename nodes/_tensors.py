"""numpy arrays to and from ComfyUI's tensors: the one place the nodes convert them (a code-rule test).

ComfyUI passes IMAGE as float32 ``[B,H,W,C]`` in 0..1 and MASK as float32 ``[B,H,W]``; the engine
works on uint8 ``HxWx3``/``HxWx4`` arrays and bool ``HxW`` masks. Nodes (frames and layers alike)
call these so that other packs' images and masks come in, and ours go out, the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..lora_foundry.media.images import resize_image
from ..lora_foundry.media.masks import resize_mask, to_bool_mask


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


def masks_for_images(mask: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """MASK batch -> bool B x H x W at the images' size; a single mask is used for every image."""
    found = [resize_mask(m, shape[1:3]) for m in tensor_to_masks(mask)]
    if len(found) == 1 and shape[0] > 1:
        found = found * shape[0]
    if len(found) != shape[0]:
        raise ValueError(f"{len(found)} masks for {shape[0]} images: give one mask, or one per image")
    return np.stack(found)


def to_numpy(tensor: Any) -> np.ndarray:
    """Any tensor (embeddings, weights) as a float32 numpy array on the CPU."""
    return tensor.detach().float().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor, np.float32)


def weight_bytes(tensor: Any, limit: int = 65536) -> bytes:
    """The first ``limit`` bytes of a weight tensor (as float32): enough to tell two models apart."""
    return to_numpy(tensor).tobytes()[:limit]
