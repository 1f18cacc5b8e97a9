"""Cut planned clips out of one sequential decode: resampled by presentation time, cropped to a bucket.

Each output frame k of a clip (at ``start + k / fps``) takes the source frame of the clip's shot
whose timestamp is nearest: that is resampling by the source's own pts, so variable-rate footage
and 23.976/29.97 sources land where they should, and no frame outside the shot is ever used. One
decode pass serves every clip (clips are in time order and do not overlap); each clip's frames go
to its encoder as they are chosen, so memory holds a frame or two whatever the shot's length.
Beside the file, a clip yields a few small frames for its contact strip and the numbers its
filters need (motion, brightness, sharpness, a perceptual hash).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...media import blur, dedup, images
from ...media.video import raw_to_array
from ...media.video_types import RawFrame
from .rules import ClipPlan

STRIP_FRAMES = 6
STRIP_LONG_SIDE = 160
MOTION_SIZE = (64, 36)
TIME_SLACK_S = 1e-4  # rounding between the demuxer's times and the decoder's


@dataclass
class CutClip:
    """What cutting one clip gave: frames written, how far the chosen frames were from their
    ideal times, the source frames used, the strip pictures and filter numbers."""

    plan: ClipPlan
    frames: int
    max_offset_s: float
    source_first: int
    source_last: int
    strip: list[np.ndarray] = field(repr=False)
    motion: float
    brightness: float
    sharpness: float
    phash: int


class _Peekable:
    def __init__(self, frames: Iterator[RawFrame]) -> None:
        self._frames = frames
        self._next: RawFrame | None = None
        self._done = False

    def peek(self) -> RawFrame | None:
        if self._next is None and not self._done:
            self._next = next(self._frames, None)
            self._done = self._next is None
        return self._next

    def advance(self) -> None:
        self.peek()
        self._next = None


def _choose(plan: ClipPlan, frames: _Peekable) -> Iterator[tuple[float, RawFrame]]:
    """(ideal time, chosen source frame) for each output frame; stops early if the shot's frames
    run out before the first one (a damaged file)."""
    times = plan.output_times()
    k, held = 0, None
    while k < len(times):
        frame = frames.peek()
        if frame is None or frame.time_s > plan.last_s + TIME_SLACK_S:
            break
        if frame.time_s < plan.first_s - TIME_SLACK_S:
            frames.advance()
            continue
        if held is not None:
            middle = (held.time_s + frame.time_s) / 2
            while k < len(times) and times[k] <= middle:
                yield times[k], held
                k += 1
            if k == len(times):
                return  # leave ``frame`` for the next clip
        held = frame
        frames.advance()
    while held is not None and k < len(times):
        yield times[k], held
        k += 1


def cover_crop(width: int, height: int, size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The scaled size covering ``size`` with the source's aspect, and the crop offset (x, y)."""
    scale = max(size[0] / width, size[1] / height)
    scaled = (max(size[0], math.ceil(width * scale - 1e-6)), max(size[1], math.ceil(height * scale - 1e-6)))
    scaled = (scaled[0] + scaled[0] % 2, scaled[1] + scaled[1] % 2)
    # even offsets: a 4:2:0 picture is cropped on whole chroma samples
    return scaled, ((scaled[0] - size[0]) // 4 * 2, (scaled[1] - size[1]) // 4 * 2)


class _Converter:
    """The bucket-sized picture as the encoder takes it (planar YUV 4:2:0, (h * 3 / 2, w)), converted
    once per source frame however often it is repeated.

    swscale scales straight from the decoder's YUV and the crop is taken plane by plane, so no RGB
    picture is made for the encoder (25 % less CPU than RGB and back, bench/clips.py); frames
    shown rotated (phone footage) take the RGB path, which turns them.
    """

    def __init__(self, source_size: tuple[int, int], size: tuple[int, int]) -> None:
        self.scaled, (self.left, self.top) = cover_crop(*source_size, size)
        self.size = size
        self._last: tuple[int, np.ndarray] | None = None

    def __call__(self, raw: RawFrame) -> np.ndarray:
        if self._last is None or self._last[0] != raw.index:
            upright = hasattr(raw.frame, "to_ndarray") and not (raw.frame.rotation or 0)
            self._last = (raw.index, self._yuv(raw) if upright else self._from_rgb(raw))
        return self._last[1]

    def _yuv(self, raw: RawFrame) -> np.ndarray:
        (scaled_w, scaled_h), (width, height) = self.scaled, self.size
        planes = raw_to_array(raw, self.scaled, "yuv420p")
        luma = planes[:scaled_h, :][self.top:self.top + height, self.left:self.left + width]
        chroma = planes[scaled_h:].reshape(2, scaled_h // 2, scaled_w // 2)
        chroma = chroma[:, self.top // 2:(self.top + height) // 2, self.left // 2:(self.left + width) // 2]
        return np.concatenate([luma.ravel(), chroma.ravel()]).reshape(height * 3 // 2, width)

    def _from_rgb(self, raw: RawFrame) -> np.ndarray:
        import cv2

        width, height = self.size
        rgb = raw_to_array(raw, self.scaled)[self.top:self.top + height, self.left:self.left + width]
        return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)


def to_rgb(yuv: np.ndarray) -> np.ndarray:
    """RGB of a planar 4:2:0 picture (for the few frames a strip or a measure needs)."""
    import cv2

    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)


def _cut_one(plan: ClipPlan, frames: _Peekable, convert: _Converter, writer: Any,
             index_of: Callable[[float], int]) -> CutClip | None:
    import cv2

    strip_at = set(np.linspace(0, plan.frames - 1, STRIP_FRAMES).round().astype(int).tolist())
    strip, offsets, used, diffs = [], [], [], []
    previous, middle = None, None
    height = convert.size[1]
    for k, (ideal, raw) in enumerate(_choose(plan, frames)):
        yuv = convert(raw)
        writer.write_yuv(yuv)
        offsets.append(abs(raw.time_s - ideal))
        used.append(index_of(raw.time_s))
        grey = cv2.resize(yuv[:height], MOTION_SIZE, interpolation=cv2.INTER_AREA)  # luma: the grey picture
        if previous is not None:
            diffs.append(float(np.abs(grey.astype(np.int16) - previous).mean()))
        previous = grey.astype(np.int16)
        if k in strip_at:
            strip.append(images.resize_long_side(to_rgb(yuv), STRIP_LONG_SIDE))
        if k == plan.frames // 2:
            middle = to_rgb(yuv)
    if not used or middle is None:
        return None
    return CutClip(plan, len(used), max(offsets), min(used), max(used), strip,
                   motion=float(np.mean(diffs)) if diffs else 0.0,
                   brightness=blur.brightness_contrast(middle)[0], sharpness=blur.sharpness(middle),
                   phash=dedup.perceptual_hash(middle))


def cut_clips(raw_frames: Iterator[RawFrame], plans: Sequence[ClipPlan], source_size: tuple[int, int],
              size: tuple[int, int], open_writer: Callable[[ClipPlan], Any], times: Sequence[float]
              ) -> Iterator[tuple[CutClip | None, Any]]:
    """For each plan in order: encode its frames into ``open_writer(plan)`` and yield (result,
    writer); the caller closes the writer (or aborts it when the result is None or too short).
    ``times`` are the source frames' presentation times (``video.frame_times``): a chosen frame's
    number is looked up from its time."""

    def index_of(time_s: float) -> int:
        at = bisect.bisect_left(times, time_s - TIME_SLACK_S)
        return min(at, len(times) - 1)

    frames = _Peekable(raw_frames)
    convert = _Converter(source_size, size)
    for plan in plans:
        writer = open_writer(plan)
        try:
            result = _cut_one(plan, frames, convert, writer, index_of)
        except BaseException:
            writer.abort()
            raise
        yield result, writer
