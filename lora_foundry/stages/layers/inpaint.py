"""Fill the holes left by cut-out characters: LaMa on windows around each hole, OpenCV as fallback.

Squashing a 1280x720 frame to 256 px and back (what many nodes do) blurs the whole background.
Instead the hole mask is dilated (SAM edges leave a halo of character pixels), each group of holes
gets a window with context around it, the window is padded to a multiple of 8 (LaMa's FFC layers
need it), filled, cropped back, and only the dilated hole pixels are pasted into the frame: every
pixel outside the dilated hole is the input pixel, exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...media import images

OPENCV_METHOD = "opencv-telea (fallback: no LaMa weights)"  # recorded on results filled without LaMa

# fill(window_rgb uint8 HxWx3, window_mask bool HxW) -> filled window uint8 HxWx3
Filler = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class InpaintSettings:
    """``dilate_px``: grow the hole by this much; ``context``: window margin as a share of the
    hole's size (at least ``min_context_px``); ``max_side``: windows larger than this are
    processed downscaled (memory), only the hole pixels are pasted back."""

    dilate_px: int = 8
    context: float = 0.5
    min_context_px: int = 32
    max_side: int = 1024


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a bool mask by ``radius`` pixels (elliptic kernel)."""
    if radius <= 0:
        return mask.copy()
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def hole_windows(hole: np.ndarray, settings: InpaintSettings) -> list[tuple[int, int, int, int]]:
    """Windows (x0, y0, x1, y1) with context around each connected hole, overlapping ones merged."""
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    height, width = hole.shape
    windows = []
    for label in range(1, count):
        x, y, w, h = (int(v) for v in stats[label, :4])
        pad_x = max(int(w * settings.context), settings.min_context_px)
        pad_y = max(int(h * settings.context), settings.min_context_px)
        windows.append((max(x - pad_x, 0), max(y - pad_y, 0),
                        min(x + w + pad_x, width), min(y + h + pad_y, height)))
    return merge_overlapping(windows)


def merge_overlapping(windows: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Merge boxes until none overlap (each hole is then filled once, with all its context)."""
    merged = list(windows)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    merged[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def inpaint(image: np.ndarray, hole: np.ndarray, fill: Filler,
            settings: InpaintSettings | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (filled image, dilated hole). Pixels outside the dilated hole equal ``image``."""
    settings = settings or InpaintSettings()
    if hole.shape != image.shape[:2]:
        raise ValueError(f"hole mask {hole.shape} does not match the image {image.shape[:2]}")
    grown = dilate(hole, settings.dilate_px)
    result = image[..., :3].copy()
    for x0, y0, x1, y1 in hole_windows(grown, settings):
        window_hole = grown[y0:y1, x0:x1]
        filled = _fill_window(result[y0:y1, x0:x1], window_hole, fill, settings.max_side)
        result[y0:y1, x0:x1][window_hole] = filled[window_hole]
    return result, grown


def _fill_window(window: np.ndarray, hole: np.ndarray, fill: Filler, max_side: int) -> np.ndarray:
    """Fill one window, downscaled only when it is larger than ``max_side``."""
    height, width = hole.shape
    if max(height, width) <= max_side:
        return fill(window, hole)
    import cv2

    small = images.resize_long_side(window, max_side)
    # area-shrinking keeps any pixel that holds some hole, so thin holes stay holes
    small_hole = images.resize_image(hole.astype(np.uint8) * 255, small.shape[:2]) > 0
    filled = fill(small, small_hole)
    return cv2.resize(filled, (width, height), interpolation=cv2.INTER_CUBIC)


def pad_to_multiple(array: np.ndarray, multiple: int = 8) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the bottom/right edges (reflect) so both sides are multiples of ``multiple``."""
    height, width = array.shape[:2]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if not pad_h and not pad_w:
        return array, (height, width)
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
    mode = "reflect" if min(height, width) > max(pad_h, pad_w) else "edge"
    return np.pad(array, widths, mode=mode), (height, width)


def lama_filler(model: Any, device: str) -> Filler:
    """A ``Filler`` that runs the TorchScript LaMa ``model(image, mask)`` on ``device`` (the model
    must be there when it fills: inside its handle's ``on_device()``)."""

    def fill(window: np.ndarray, hole: np.ndarray) -> np.ndarray:
        import torch

        padded, (height, width) = pad_to_multiple(window)
        padded_hole, _ = pad_to_multiple(hole.astype(np.uint8))
        image_t = torch.from_numpy(padded).permute(2, 0, 1)[None].float().div(255.0).to(device)
        mask_t = torch.from_numpy(padded_hole)[None, None].float().to(device)
        with torch.inference_mode():
            output = model(image_t, mask_t)
        out = output[0].permute(1, 2, 0).float().cpu().numpy()[:height, :width]
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)

    return fill


def opencv_filler(radius: int = 5) -> Filler:
    """The no-weights fallback: OpenCV's Telea inpainting (smooth, fine for small holes only)."""

    def fill(window: np.ndarray, hole: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.inpaint(np.ascontiguousarray(window), hole.astype(np.uint8) * 255, radius,
                           cv2.INPAINT_TELEA)

    return fill
