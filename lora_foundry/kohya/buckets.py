"""Aspect-ratio buckets, and resizing each image to its bucket before it is written.

Trainers batch images of one size; bucketing groups images by aspect ratio into a few sizes of
about ``resolution``² pixels (multiples of ``step``) instead of squashing everything square. We
pick the bucket the way sd-scripts does (nearest aspect ratio among sizes of at most the target
area) and resize + centre-crop to it when writing, so every trainer (sd-scripts, kohya_ss,
OneTrainer, ai-toolkit, ComfyUI's own loader) reads ready-sized images and none resizes again.

Resizing uses OpenCV: INTER_AREA when shrinking (measured 3.5x faster than Pillow LANCZOS for
1,000 ~1 MP images, FIELD_NOTES) and INTER_CUBIC when enlarging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BucketSpec:
    """Bucket geometry: target side (area = resolution²), side limits and the size step."""

    resolution: int = 1024
    min_side: int = 256
    max_side: int = 2048
    step: int = 64
    no_upscale: bool = False

    def __post_init__(self) -> None:
        if self.step <= 0 or self.resolution % self.step or self.min_side % self.step:
            raise ValueError(f"resolution {self.resolution} and min side {self.min_side} must be "
                             f"multiples of the bucket step {self.step}")
        if not self.min_side <= self.resolution <= self.max_side:
            raise ValueError(f"need min side {self.min_side} <= resolution {self.resolution} <= "
                             f"max side {self.max_side}")


def make_buckets(spec: BucketSpec) -> list[tuple[int, int]]:
    """Every (width, height) bucket: multiples of ``step``, area at most ``resolution``²."""
    max_area = spec.resolution * spec.resolution
    buckets = {(spec.resolution, spec.resolution)}
    for width in range(spec.min_side, spec.max_side + 1, spec.step):
        height = min(spec.max_side, (max_area // width) // spec.step * spec.step)
        if height >= spec.min_side:
            buckets.add((width, height))
            buckets.add((height, width))
    return sorted(buckets)


def _nearest(buckets: list[tuple[int, int]], width: int, height: int) -> tuple[int, int]:
    aspect = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - aspect), -b[0] * b[1]))


def choose_bucket(width: int, height: int, spec: BucketSpec,
                  buckets: list[tuple[int, int]] | None = None) -> tuple[int, int]:
    """The bucket for an image of ``width`` x ``height``.

    With ``no_upscale``, an image smaller than the target area keeps its own scale: its bucket is
    its own size rounded down to the step (the crop loses at most ``step - 1`` pixels per side).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} is empty")
    if spec.no_upscale and width * height <= spec.resolution * spec.resolution:
        fitted = (max(spec.step, width // spec.step * spec.step), max(spec.step, height // spec.step * spec.step))
        return fitted
    return _nearest(buckets or make_buckets(spec), width, height)


def resize_to_bucket(pixels: np.ndarray, bucket: tuple[int, int]) -> np.ndarray:
    """Scale ``pixels`` to cover ``bucket`` (aspect kept), then centre-crop to it exactly."""
    import cv2

    height, width = pixels.shape[:2]
    target_w, target_h = bucket
    if (width, height) == (target_w, target_h):
        return pixels
    scale = max(target_w / width, target_h / height)
    new_w, new_h = max(target_w, round(width * scale)), max(target_h, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    resized = cv2.resize(pixels, (new_w, new_h), interpolation=interpolation)
    left, top = (new_w - target_w) // 2, (new_h - target_h) // 2
    return np.ascontiguousarray(resized[top:top + target_h, left:left + target_w])
