"""Which bucket sd-scripts will give an image, or why it cannot: checked before launch.

sd-scripts (48d368f, ``library/train_util.py`` ``BucketManager.select_bucket`` and
``library/model_util.py`` ``make_bucket_resolutions``) does integer arithmetic that breaks for small
resolutions: with ``bucket_no_upscale`` an image larger than ``resolution``² is scaled to that
area and each side is rounded DOWN to ``bucket_reso_steps``; when the short side of a wide image
rounds to 0 (resolution 64, 16:9 frames: 85x48 → 64x0), ``select_bucket`` divides by zero after
the model has loaded. Without ``bucket_no_upscale`` the predefined buckets all have sides of at
least one step, unless the resolution itself is below a step. This module repeats that
arithmetic (it is the rule, so it cannot be replaced by a looser one) and names the failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class BucketRefused(ValueError):
    """sd-scripts cannot place an image of this size at this resolution."""


@dataclass(frozen=True)
class BucketSettings:
    """The dataset's bucketing options as sd-scripts reads them (its defaults when absent)."""

    resolution: int
    min_reso: int = 256
    max_reso: int = 1024
    steps: int = 64
    no_upscale: bool = False

    def adjusted(self) -> BucketSettings:
        """min rounded down and max rounded up to a multiple of the step, as sd-scripts does."""
        low = self.min_reso - self.min_reso % self.steps
        high = self.max_reso + (self.steps - self.max_reso % self.steps) % self.steps
        return BucketSettings(self.resolution, low, high, self.steps, self.no_upscale)


def _round_to_steps(value: float, steps: int) -> int:
    whole = int(value + 0.5)
    return whole - whole % steps


def predefined_buckets(settings: BucketSettings) -> list[tuple[int, int]]:
    """sd-scripts' ``make_bucket_resolutions`` for a square ``resolution``."""
    area, steps = settings.resolution ** 2, settings.steps
    side = int(math.sqrt(area) // steps) * steps
    buckets = {(side, side)}
    for width in range(settings.min_reso, settings.max_reso + 1, steps):
        height = min(settings.max_reso, int((area // width) // steps) * steps)
        if height >= settings.min_reso:
            buckets.update({(width, height), (height, width)})
    return sorted(buckets)


def _no_upscale_bucket(width: int, height: int, settings: BucketSettings) -> tuple[int, int]:
    area, steps, aspect = settings.resolution ** 2, settings.steps, width / height
    if width * height > area:
        scaled_w = math.sqrt(area * aspect)
        scaled_h = area / scaled_w
        by_width = _round_to_steps(scaled_w, steps)
        height_for_width = _round_to_steps(by_width / aspect, steps)
        by_height = _round_to_steps(scaled_h, steps)
        if height_for_width == 0 or by_height == 0:
            raise BucketRefused(
                f"scaled to {settings.resolution}² pixels a {width}x{height} image is {scaled_w:.0f}x{scaled_h:.0f}, "
                f"and rounding its sides down to bucket_reso_steps {steps} gives 0 "
                "(sd-scripts' select_bucket would stop with ZeroDivisionError)")
        error_w = abs(by_width / height_for_width - aspect)
        error_h = abs(_round_to_steps(by_height * aspect, steps) / by_height - aspect)
        size = (by_width, int(by_width / aspect + 0.5)) if error_w < error_h else (int(by_height * aspect + 0.5), by_height)
    else:
        size = (width, height)
    bucket = (size[0] - size[0] % steps, size[1] - size[1] % steps)
    if 0 in bucket:
        raise BucketRefused(f"a {width}x{height} image is smaller than one bucket step ({steps} px) on a side")
    return bucket


def sdscripts_bucket(width: int, height: int, settings: BucketSettings) -> tuple[int, int]:
    """The bucket sd-scripts picks for a ``width`` x ``height`` image, or ``BucketRefused``."""
    settings = settings.adjusted()
    if settings.no_upscale:
        return _no_upscale_bucket(width, height, settings)
    if settings.resolution < settings.steps or settings.min_reso == 0:
        raise BucketRefused(f"resolution {settings.resolution} is below one bucket step ({settings.steps} px)")
    buckets = predefined_buckets(settings)
    aspect = width / height
    return min(buckets, key=lambda b: abs(b[0] / b[1] - aspect))


def smallest_working_resolution(sizes: set[tuple[int, int]], settings: BucketSettings, limit: int = 4096) -> int | None:
    """The smallest multiple of the step at or above ``settings.resolution`` that buckets every size."""
    for resolution in range(max(settings.steps, settings.resolution), limit + 1, settings.steps):
        trial = BucketSettings(resolution, min(settings.min_reso, resolution), max(settings.max_reso, resolution),
                               settings.steps, settings.no_upscale)
        try:
            for width, height in sizes:
                sdscripts_bucket(width, height, trial)
        except BucketRefused:
            continue
        return resolution
    return None
