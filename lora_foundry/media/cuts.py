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


def _local_median(scores: np.ndarray, half_window: int) -> np.ndarray:
    """Median of the differences around each frame (edge-padded sliding window)."""
    if scores.size == 0:
        return scores
    padded = np.pad(scores, half_window, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_window + 1)
    return np.median(windows, axis=1)


def _candidates(scores: np.ndarray, skips: np.ndarray, threshold: float, ratio: float,
                half_window: int) -> list[int]:
    """Positions (into ``scores``) that pass the absolute, adaptive and flash tests."""
    baseline = np.maximum(_local_median(scores, half_window), 1.0)
    passing = np.flatnonzero((scores >= threshold) & (scores >= ratio * baseline))
    return [int(p) for p in passing if not _is_flash(scores, skips, int(p), threshold)]


def _is_flash(scores: np.ndarray, skips: np.ndarray, position: int, threshold: float) -> bool:
    """A one-frame flash: the frame after it (or before it) looks like the one before (after)."""
    after = position + 1
    into_flash = after < scores.size and scores[after] >= threshold and (
        skips[after] < threshold / 2)
    out_of_flash = position >= 2 and scores[position - 1] >= threshold and (
        skips[position] < threshold / 2)
    return bool(into_flash or out_of_flash)


def _enforce_min_shot(positions: list[int], scores: np.ndarray, min_len: int) -> list[int]:
    """Drop cuts closer than ``min_len`` frames to the previous one, keeping the stronger."""
    kept: list[int] = []
    for position in positions:
        if position < min_len:
            continue
        if kept and position - kept[-1] < min_len:
            if scores[position] > scores[kept[-1]]:
                kept[-1] = position
            continue
        kept.append(position)
    return kept


def cuts_from_scores(scores: Sequence[float], skips: Sequence[float], fps: float, *,
                     threshold: float = 20.0, ratio: float = 3.0, min_shot_s: float = 0.5
                     ) -> list[int]:
    """Cut positions from per-frame differences; ``scores[i]`` compares frame i to frame i-1."""
    score_arr = np.asarray(scores, dtype=np.float32)
    skip_arr = np.asarray(skips, dtype=np.float32)
    half_window = max(2, round(fps / 2))
    positions = _candidates(score_arr, skip_arr, threshold, ratio, half_window)
    return _enforce_min_shot(positions, score_arr, max(1, round(min_shot_s * fps)))


def detect_cuts(
    path: Path,
    *,
    threshold: float = 20.0,
    ratio: float = 3.0,
    min_shot_s: float = 0.5,
    start_s: float = 0.0,
    end_s: float | None = None,
    progress: Progress | None = None,
) -> CutResult:
    """Decode ``path`` once and return where its hard cuts are (frame indices from the file start).

    ``threshold`` is the mean absolute grey difference (0-255) a cut needs at least; ``ratio`` how
    many times above the local median difference it must be.
    """
    info = probe_video(path)
    progress = ensure_progress(progress)
    span = (end_s if end_s is not None else info.duration_s) - start_s
    total = max(1, round(span * info.fps)) if span > 0 else max(1, info.frame_count)
    step = max(1, round(info.fps))
    scores, skips, times, indices = [0.0], [0.0], [], []
    before_prev = prev = None
    for done, raw in enumerate(decode_raw(path, start_s=start_s, end_s=end_s), start=1):
        thumb = raw_to_array(raw, THUMB_SIZE, "gray").astype(np.int16)
        if prev is not None:
            scores.append(float(np.abs(thumb - prev).mean()))
            skips.append(float(np.abs(thumb - before_prev).mean()) if before_prev is not None
                         else scores[-1])
        before_prev, prev = prev, thumb
        times.append(raw.time_s)
        indices.append(raw.index)
        if done % step == 0:
            progress.update(min(done, total), total)
    progress.update(total, total)
    if not indices:
        return CutResult([], 0, info.fps)
    positions = cuts_from_scores(scores[: len(indices)], skips[: len(indices)], info.fps,
                                 threshold=threshold, ratio=ratio, min_shot_s=min_shot_s)
    return CutResult(
        cuts=[indices[p] for p in positions], frame_count=indices[-1] + 1, fps=info.fps,
        start_frame=indices[0], frame_times=times, scores=scores[: len(indices)],
    )


def shot_of(frame_index: int, cuts: Sequence[int]) -> int:
    """Shot number of ``frame_index``: how many cuts are at or before it (``cuts`` sorted)."""
    return bisect.bisect_right(cuts, frame_index)
