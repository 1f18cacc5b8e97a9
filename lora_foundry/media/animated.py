"""Animated GIF and WebP, decoded with Pillow rather than PyAV.

FFmpeg's WebP decoder does not handle animated WebP, and Pillow composites GIF frames (disposal,
transparency) properly. Frame times come from each frame's own duration.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from .images import ImageError, open_checked
from .video_types import MediaError, RawFrame, VideoInfo

logger = logging.getLogger(__name__)

DEFAULT_FPS = 10.0  # when a file gives no frame durations


def _open_pillow(path: Path):
    try:
        image = open_checked(path)
        image.seek(0)
    except (ImageError, OSError, SyntaxError) as exc:
        raise MediaError(f"{path}: not a readable animated image ({exc})") from exc
    return image


def _readable_frames(image, path: Path, limit: int) -> list[float]:
    """Durations (ms) of the first ``limit`` frames that load; a damaged tail just ends the list."""
    durations: list[float] = []
    for position in range(limit):
        try:
            image.seek(position)
            image.load()  # WebP reports a frame's duration only once it is loaded
        except EOFError:
            break
        except (OSError, ValueError, SyntaxError) as exc:
            if position == 0:
                raise MediaError(f"{path}: not a readable animated image ({exc})") from exc
            break
        durations.append(float(image.info.get("duration", 0) or 0))
    return durations


def probe_animated(path: Path) -> VideoInfo:
    """Size, frame rate (from the frame durations) and frame count of a GIF or WebP."""
    image = _open_pillow(path)
    with image:
        try:
            count = int(getattr(image, "n_frames", 1))
            durations = _readable_frames(image, path, min(count, 50))
        except (OSError, ValueError, SyntaxError):  # a damaged file: count what loads
            durations = _readable_frames(image, path, 1_000_000)
            count = len(durations)
        mean_ms = sum(durations) / len(durations) if durations else 0.0
        fps = 1000.0 / mean_ms if mean_ms > 0 else DEFAULT_FPS
        codec = (image.format or path.suffix.lstrip(".")).lower()
        return VideoInfo(path, image.width, image.height, fps, count, count / fps, codec)


def decode_animated(path: Path, start_s: float, end_s: float | None) -> Iterator[RawFrame]:
    """Frames in order as RGB ``PIL.Image``s; a damaged tail ends the sequence with a warning."""
    from PIL import ImageSequence

    image = _open_pillow(path)
    with image:
        time_s = 0.0
        try:
            for index, frame in enumerate(ImageSequence.Iterator(image)):
                if end_s is not None and time_s >= end_s:
                    return
                rgb = frame.convert("RGB")  # loads the frame, which also sets its duration
                duration_s = float(frame.info.get("duration", 0) or 0) / 1000.0
                if time_s >= start_s:
                    yield RawFrame(index, time_s, rgb)
                time_s += duration_s if duration_s > 0 else 1.0 / DEFAULT_FPS
        except (OSError, EOFError, ValueError) as exc:
            logger.warning("%s: decoding stopped early, the file looks damaged (%s)", path, exc)
