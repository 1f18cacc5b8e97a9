"""Hard-cut detection by frame difference on tiny grey thumbnails straight from the decoder.

Why not PySceneDetect: it depends on opencv-python, which clashes with the opencv-python-headless
many ComfyUI installs carry, and on real footage a numpy difference of 64x36 grey frames found the
same cuts at the same speed (FIELD_NOTES). The decoder is the cost; the arithmetic is free.

A frame starts a new shot when its mean absolute difference to the previous frame is both above
an absolute ``threshold`` and ``ratio`` times above the median difference around it (so fast
motion, which raises every difference nearby, does not read as a cut). A single flash frame (the
frame after it looks like the one before it) is not a cut, and shots shorter than ``min_shot_s``
are merged into their neighbour. Crossfades are not detected.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..progress import Progress, ensure_progress
from .video import decode_raw, probe_video, raw_to_array
from .video_types import VideoInfo

THUMB_SIZE = (64, 36)


@dataclass(frozen=True)
class CutResult:
    """``cuts``: first frame index of every shot after the first (shot 0 starts the range).

    ``frame_count`` is one past the last frame index examined; ``start_frame`` the first one;
    ``frame_times[i]`` the time of frame ``start_frame + i`` (from the decoder, so exact for
    variable frame rates).
    """

    cuts: list[int]
    frame_count: int
    fps: float
    start_frame: int = 0
    frame_times: list[float] = field(default_factory=list, repr=False)
    scores: list[float] = field(default_factory=list, repr=False)


class CutTracker:
    """Online cut decisions, one frame at a time, so cuts can be found in the extraction pass.

    ``push(thumbnail)`` per decoded frame (grey uint8, same size each time); ``finish()`` at the
    end. A frame's shot is final once ``settled`` has passed it: a decision needs the differences
    half a window ahead (local median, flash test), and a cut may still be replaced by a stronger
    one less than a minimum shot length after it. ``detect_cuts`` uses this same code, so one
    pass and two passes give the same shots.
    """

    def __init__(self, fps: float, *, threshold: float = 20.0, ratio: float = 3.0,
                 min_shot_s: float = 0.5, keep_scores: bool = True) -> None:
        self.threshold, self.ratio = threshold, ratio
        self.half_window = max(2, round(fps / 2))
        self.min_len = max(1, round(min_shot_s * fps))
        # scores[p - base]: frame p vs frame p-1 (0 for the first); skips: frame p vs frame p-2.
        # With keep_scores=False the decided past is dropped (a one-pass sampler's memory stays
        # flat in video length) and ``scores`` holds only the recent ones.
        self.scores: list[float] = []
        self.skips: list[float] = []
        self.keep_scores = keep_scores
        self._base = 0
        self.cuts: list[int] = []  # positions (frames since the first pushed)
        self._decided = 0
        self._finished = False
        self._previous: np.ndarray | None = None
        self._before_previous: np.ndarray | None = None

    def push(self, thumbnail: np.ndarray) -> None:
        """Score the next frame's grey thumbnail against the two before it."""
        thumb = thumbnail.astype(np.int16)
        if self._previous is None:
            score = skip = 0.0
        else:
            score = float(np.abs(thumb - self._previous).mean())
            reference = self._before_previous if self._before_previous is not None else self._previous
            skip = float(np.abs(thumb - reference).mean())
        self._before_previous, self._previous = self._previous, thumb
        self.push_scores(score, skip)

    def push_scores(self, score: float, skip: float) -> None:
        """The next frame's difference to the previous frame and to the one before that."""
        self.scores.append(float(score))
        self.skips.append(float(skip))
        while self._decided + self.half_window + 1 < self._pushed:
            self._decide(self._decided)
        if not self.keep_scores:
            self._forget()

    def finish(self) -> None:
        while self._decided < self._pushed:
            self._decide(self._decided)
        self._finished = True

    @property
    def _pushed(self) -> int:
        return self._base + len(self.scores)

    def _forget(self) -> None:
        """Drop scores no decision can read again: older than a window and a minimum shot."""
        keep_from = self._decided - max(self.half_window, self.min_len) - 2
        if keep_from - self._base > 4096:
            del self.scores[:keep_from - self._base]
            del self.skips[:keep_from - self._base]
            self._base = keep_from

    @property
    def settled(self) -> int:
        """Frames at positions below this have their final shot number."""
        if self._finished:
            return self._pushed
        return max(0, self._decided - self.min_len)

    def _score(self, position: int) -> float:
        return self.scores[position - self._base]

    def _skip(self, position: int) -> float:
        return self.skips[position - self._base]

    def _local_median(self, position: int) -> float:
        last = self._pushed - 1  # edge padding at both ends, as np.pad(mode="edge")
        window = [self._score(min(max(i, 0), last))
                  for i in range(position - self.half_window, position + self.half_window + 1)]
        return float(np.median(window))

    def _is_flash(self, position: int) -> bool:
        """A one-frame flash: the frame after it (or before it) looks like the one before (after)."""
        limit, after = self.threshold, position + 1
        into_flash = after < self._pushed and self._score(after) >= limit and (
            self._skip(after) < limit / 2)
        out_of_flash = position >= 2 and self._score(position - 1) >= limit and (
            self._skip(position) < limit / 2)
        return into_flash or out_of_flash

    def _decide(self, position: int) -> None:
        self._decided = position + 1
        score = self._score(position)
        if score < self.threshold or position < self.min_len:
            return
        if score < self.ratio * max(self._local_median(position), 1.0) or self._is_flash(position):
            return
        if self.cuts and position - self.cuts[-1] < self.min_len:
            if score > self._score(self.cuts[-1]):  # too close: keep the stronger of the two
                self.cuts[-1] = position
            return
        self.cuts.append(position)


def cuts_from_scores(scores: Sequence[float], skips: Sequence[float], fps: float, *,
                     threshold: float = 20.0, ratio: float = 3.0, min_shot_s: float = 0.5
                     ) -> list[int]:
    """Cut positions from per-frame differences (``scores[i]``: frame i vs i-1, 0 for the first;
    ``skips[i]``: frame i vs i-2); the same decisions as ``CutTracker``."""
    tracker = CutTracker(fps, threshold=threshold, ratio=ratio, min_shot_s=min_shot_s)
    for score, skip in zip(scores, skips, strict=True):
        tracker.push_scores(score, skip)
    tracker.finish()
    return list(tracker.cuts)


def gray_thumbnail(raw) -> np.ndarray:
    """The tiny grey picture the cut detector compares."""
    return raw_to_array(raw, THUMB_SIZE, "gray")


def detect_cuts(
    path: Path,
    *,
    threshold: float = 20.0,
    ratio: float = 3.0,
    min_shot_s: float = 0.5,
    start_s: float = 0.0,
    end_s: float | None = None,
    progress: Progress | None = None,
    info: VideoInfo | None = None,
) -> CutResult:
    """Decode ``path`` once and return where its hard cuts are (frame indices from the file start).

    ``threshold`` is the mean absolute grey difference (0-255) a cut needs at least; ``ratio`` how
    many times above the local median difference it must be. ``info``: the caller's
    ``probe_video(path)``, probed here when not given.
    """
    info = info or probe_video(path)
    progress = ensure_progress(progress)
    span = (end_s if end_s is not None else info.duration_s) - start_s
    total = max(1, round(span * info.fps)) if span > 0 else max(1, info.frame_count)
    step = max(1, round(info.fps))
    tracker = CutTracker(info.fps, threshold=threshold, ratio=ratio, min_shot_s=min_shot_s)
    times, indices = [], []
    for done, raw in enumerate(decode_raw(path, start_s=start_s, end_s=end_s), start=1):
        tracker.push(gray_thumbnail(raw))
        times.append(raw.time_s)
        indices.append(raw.index)
        if done % step == 0:
            progress.update(min(done, total), total)
    tracker.finish()
    progress.update(total, total)
    if not indices:
        return CutResult([], 0, info.fps)
    return CutResult(
        cuts=[indices[p] for p in tracker.cuts], frame_count=indices[-1] + 1, fps=info.fps,
        start_frame=indices[0], frame_times=times, scores=tracker.scores,
    )


def shot_of(frame_index: int, cuts: Sequence[int]) -> int:
    """Shot number of ``frame_index``: how many cuts are at or before it (``cuts`` sorted)."""
    return bisect.bisect_right(cuts, frame_index)
