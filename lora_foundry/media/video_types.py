"""What a decoded video is made of, shared by the PyAV decoder (``video``) and the Pillow decoder
for animated GIF/WebP (``animated``): kept apart so neither decoder imports the other's module
for its types (they used to import each other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class MediaError(ValueError):
    """A media file cannot be read; the message always names the file."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float
    codec: str


@dataclass(frozen=True)
class DecodedFrame:
    index: int
    time_s: float
    rgb: np.ndarray  # H x W x 3 uint8


@dataclass(frozen=True)
class RawFrame:
    """A decoded frame not yet converted: an ``av.VideoFrame`` or a ``PIL.Image``.

    ``scalers`` is shared by the frames of one decode pass: one swscale context per output
    (format, size), reused. Building one per frame (what ``frame.to_ndarray(width=...)`` does)
    cost 9x more for a grey thumbnail and 3x more for a full RGB frame (docs/media.md).
    """

    index: int
    time_s: float
    frame: Any
    scalers: dict = field(default_factory=dict, repr=False, compare=False)
