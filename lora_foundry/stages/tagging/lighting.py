"""Lighting from pixels, no weights: key, contrast, colour temperature, light direction, tags.

A lighting LoRA wants frames that share one kind of light, and captions that name it. These are
plain image statistics with thresholds, so they are cheap (a 256-px thumbnail is enough), the
same on every machine, and explainable; they are heuristics, not a classifier, and
docs/understanding.md says which tag comes from which rule. Setting and time of day can also come
from CLIP zero-shot (``CLIP_PROMPTS``) when a CLIP model is given; the wrapper merges both.

Measured on a thumbnail (long side ``ANALYSIS_SIDE``) in linear-ish terms:
- luminance Y (Rec. 709) in 0..1: mean -> key, 5th-95th percentile spread -> contrast;
- warmth = (R - B) / (R + B) over mid-tone pixels (clipped and dark pixels say little about the
  light's colour) -> warm / neutral / cool;
- a plane fitted to Y over the subject (alpha > 0) or the frame: its slope is the light direction;
- rim light: with a subject mask, a rim band brighter than the subject's inside;
- outdoor cues: blue sky in the top third, or vegetation (saturated green) anywhere; with
  neither (and not night) a frame is tagged indoor. A white wall looks like an overcast sky to a
  pixel rule, so only blue sky counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ...media.images import resize_long_side

ANALYSIS_SIDE = 256
LIGHTING_TAGS = ("sunset", "golden hour", "midday", "night", "indoor", "dramatic", "soft", "rim light")
CLIP_PROMPTS = {
    "sunset": "a photo taken at sunset",
    "golden hour": "a photo taken in warm golden hour light",
    "midday": "a photo taken outdoors at midday in bright sunlight",
    "night": "a photo taken at night",
    "indoor": "a photo taken indoors",
    "overcast": "a photo taken outdoors on an overcast day",
}


@dataclass(frozen=True)
class LightingStats:
    mean_luma: float
    contrast: float  # 95th - 5th percentile of luma
    warmth: float  # (R - B) / (R + B) over mid-tones
    saturation: float
    sky_fraction: float  # blue-sky pixels in the top third
    vegetation_fraction: float  # saturated green pixels in the frame
    direction_deg: float  # where the light comes FROM, 0 = right, 90 = top, 180 = left
    direction_strength: float  # slope of luma across the subject, relative to its mean
    rim_ratio: float  # rim band luma / inside luma (1.0 when no mask)

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def _luma(rgb: np.ndarray) -> np.ndarray:
    f = rgb[..., :3].astype(np.float32) / 255.0
    return 0.2126 * f[..., 0] + 0.7152 * f[..., 1] + 0.0722 * f[..., 2]


def _warmth(rgb: np.ndarray, luma: np.ndarray, mask: np.ndarray) -> float:
    mid = mask & (luma > 0.15) & (luma < 0.92)
    if mid.sum() < 16:
        mid = mask
    f = rgb[..., :3].astype(np.float32)[mid]
    if len(f) == 0:
        return 0.0
    r, b = float(f[:, 0].mean()), float(f[:, 2].mean())
    return (r - b) / max(r + b, 1e-6)


def _outdoor_cues(rgb: np.ndarray) -> tuple[float, float]:
    """(blue-sky fraction of the top third, vegetation fraction of the frame)."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
    top = slice(0, max(1, rgb.shape[0] // 3))
    blue_sky = (hue[top] >= 90) & (hue[top] <= 130) & (sat[top] > 0.3) & (val[top] > 0.45)
    vegetation = (hue >= 30) & (hue <= 85) & (sat > 0.25) & (val > 0.2)
    return float(blue_sky.mean()), float(vegetation.mean())


def _direction(luma: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Fit luma = a + b*x + c*y (x, y in -1..1, y up) over ``mask``; return angle and strength."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 16:
        return 0.0, 0.0
    h, w = luma.shape
    x = xs / max(w - 1, 1) * 2 - 1
    y = -(ys / max(h - 1, 1) * 2 - 1)
    design = np.stack([np.ones_like(x), x, y], axis=1)
    coef, *_ = np.linalg.lstsq(design, luma[ys, xs], rcond=None)
    slope = np.array([coef[1], coef[2]])
    strength = float(np.linalg.norm(slope) / max(float(coef[0]), 1e-3))
    return float(np.degrees(np.arctan2(slope[1], slope[0])) % 360), strength


def _rim_ratio(luma: np.ndarray, alpha: np.ndarray | None) -> float:
    if alpha is None:
        return 1.0
    import cv2

    inside = (alpha > 127).astype(np.uint8)
    if inside.sum() < 64:
        return 1.0
    band = max(2, int(round(min(luma.shape) * 0.02)))
    core = cv2.erode(inside, np.ones((2 * band + 1, 2 * band + 1), np.uint8))
    rim = inside.astype(bool) & ~core.astype(bool)
    if core.sum() < 16 or rim.sum() < 16:
        return 1.0
    return float(luma[rim].mean() / max(float(luma[core.astype(bool)].mean()), 1e-3))


def measure(image: np.ndarray) -> LightingStats:
    """Statistics of one RGB or RGBA uint8 image (RGBA: alpha marks the subject)."""
    import cv2

    thumb = resize_long_side(np.asarray(image), ANALYSIS_SIDE)
    alpha = thumb[..., 3] if thumb.ndim == 3 and thumb.shape[2] == 4 else None
    rgb = np.ascontiguousarray(thumb[..., :3])
    luma = _luma(rgb)
    subject = alpha > 127 if alpha is not None and (alpha > 127).sum() >= 64 else np.ones(luma.shape, bool)
    values = luma[subject]
    p5, p95 = np.percentile(values, [5, 95])
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    angle, strength = _direction(luma, subject)
    sky, vegetation = _outdoor_cues(rgb) if alpha is None else (0.0, 0.0)
    return LightingStats(
        mean_luma=float(values.mean()),
        contrast=float(p95 - p5),
        warmth=_warmth(rgb, luma, subject),
        saturation=float(hsv[..., 1][subject].mean() / 255.0),
        sky_fraction=sky,
        vegetation_fraction=vegetation,
        direction_deg=angle,
        direction_strength=strength,
        rim_ratio=_rim_ratio(luma, alpha),
    )


def key_of(stats: LightingStats) -> str:
    return "high key" if stats.mean_luma >= 0.6 else "low key" if stats.mean_luma <= 0.3 else "mid key"


def temperature_of(stats: LightingStats) -> str:
    return "warm" if stats.warmth >= 0.06 else "cool" if stats.warmth <= -0.06 else "neutral"


def direction_of(stats: LightingStats, min_strength: float = 0.35) -> str | None:
    """"light from the left/right/above/below" when the luma slope is clear enough."""
    if stats.direction_strength < min_strength:
        return None
    sides = ("the right", "above", "the left", "below")
    return f"light from {sides[int(((stats.direction_deg + 45) % 360) // 90)]}"


def is_outdoor(stats: LightingStats) -> bool:
    return stats.sky_fraction >= 0.18 or stats.vegetation_fraction >= 0.15


def time_of_day(stats: LightingStats) -> str | None:
    """night / sunset / golden hour / midday by rule, or None when no rule is sure."""
    if stats.mean_luma < 0.18:
        return "night"
    if not is_outdoor(stats):
        return None
    if stats.warmth >= 0.22 and stats.saturation >= 0.35 and stats.mean_luma < 0.55:
        return "sunset"
    if stats.warmth >= 0.08 and stats.mean_luma >= 0.3:
        return "golden hour"
    if stats.sky_fraction >= 0.25 and stats.mean_luma >= 0.5:
        return "midday"
    return None


def tags_of(stats: LightingStats) -> list[str]:
    """Lighting tags by rule (see the module docstring and docs/understanding.md)."""
    tags = [key_of(stats), f"{temperature_of(stats)} light"]
    when = time_of_day(stats)
    if when:
        tags.append(when)
    if when != "night" and not is_outdoor(stats):
        tags.append("indoor")
    if stats.contrast >= 0.75 and (stats.mean_luma <= 0.35 or stats.direction_strength >= 0.8):
        tags.append("dramatic")
    elif stats.contrast <= 0.45:
        tags.append("soft")
    if stats.rim_ratio >= 1.25:
        tags.append("rim light")
    direction = direction_of(stats)
    if direction:
        tags.append(direction)
    return tags
