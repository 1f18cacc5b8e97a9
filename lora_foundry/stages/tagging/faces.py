"""Face crops and expression labels: the geometry and vocabulary, apart from the workspace.

A face box grows by a margin and becomes a square crop; expressions are labels from the user's
classifier or from CLIP zero-shot over ``EXPRESSIONS`` (or the user's own words).
"""

from __future__ import annotations

from collections.abc import Sequence

EXPRESSIONS = ("smiling", "laughing", "neutral expression", "sad", "crying", "angry", "shouting",
               "surprised", "frightened", "disgusted", "eyes closed")


EXPRESSION_TEMPLATE = "a close-up photo of a face, {}"


def crop_box(box: Sequence[float], margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The face box grown by ``margin`` of its size on each side, made square, kept in the image."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = min(side, float(width), float(height))
    left = min(max(cx - side / 2, 0.0), width - side)
    top = min(max(cy - side / 2, 0.0), height - side)
    return int(round(left)), int(round(top)), int(round(left + side)), int(round(top + side))


def parse_vocabulary(text: str) -> list[str]:
    """User labels, comma or newline separated; the default vocabulary when empty."""
    labels = [part.strip() for part in str(text).replace("\n", ",").split(",") if part.strip()]
    return labels or list(EXPRESSIONS)
