"""Which frames of a video to keep: by interval, per shot, keyframes only, or all.

A plan is computed before any frame is converted or written, so the extraction pass can be resumed
(the same plan comes out of the same file and parameters) and every sample carries its shot id:
shots are detected in every mode, because later stages (tracking, clustering) stay inside a shot.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..choices import one_of
from ..progress import Progress, ensure_progress
from .cuts import CutResult, CutTracker, detect_cuts, gray_thumbnail, shot_of
from .shot_picks import candidate_capacity, picks_in_one_pass, shot_picks
from .video import (
    DecodedFrame,
    VideoInfo,
    decode_raw,
    keyframe_times,
    probe_video,
    raw_to_array,
    scaled_size,
)

MODES = ("interval", "scene", "keyframes", "all")
ONE_PASS_MODES = ("interval", "scene", "all")  # what iter_samples takes; keyframes need plan_samples


@dataclass(frozen=True)
class SampleSpec:
    """Which frames to take from a video: one frame every ``interval_s`` (interval), ``per_shot`` frames
    per shot (scene), the keyframes, or all, between ``start_s`` and ``end_s`` (None = the end).

    The one set of choices ``plan_samples`` and ``iter_samples`` share (the one-pass sampler gives
    the planner's samples for the same spec), checked once, here, when it is made."""

    mode: str = "interval"
    interval_s: float = 1.0
    per_shot: int = 3
    start_s: float = 0.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        one_of(self.mode, MODES, "sampling mode")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"time range ends ({self.end_s} s) before it starts ({self.start_s} s)")


@dataclass(frozen=True)
class FrameSample:
    frame_index: int
    time_s: float
    shot: int


@dataclass(frozen=True)
class SamplePlan:
    info: VideoInfo
    cuts: list[int]
    samples: list[FrameSample]
    mode: str

    @property
    def wanted(self) -> frozenset[int]:
        """The sampled frame indices, for ``iter_frames(wanted=plan.wanted.__contains__)``."""
        return frozenset(sample.frame_index for sample in self.samples)


def _time_of(result: CutResult, index: int) -> float:
    position = index - result.start_frame
    if 0 <= position < len(result.frame_times):
        return result.frame_times[position]
    return index / result.fps


class _IntervalPicker:
    """Online: take the first frame at or after each multiple of ``interval_s`` from the first."""

    def __init__(self, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self._origin: float | None = None
        self._next = 0.0

    def take(self, time_s: float) -> bool:
        if self._origin is None:
            self._origin = self._next = time_s
        if time_s + 1e-6 < self._next:
            return False
        steps = int((time_s + 1e-6 - self._origin) // self.interval_s) + 1
        self._next = self._origin + steps * self.interval_s
        return True


def _interval_indices(result: CutResult, interval_s: float) -> list[int]:
    """The first frame at or after each multiple of ``interval_s`` from the start of the range."""
    picker = _IntervalPicker(interval_s)
    return [result.start_frame + position for position, time_s in enumerate(result.frame_times)
            if picker.take(time_s)]


def shot_bounds(result: CutResult) -> list[tuple[int, int]]:
    """(first, end) frame indices of every shot in the examined range, end exclusive."""
    starts = [result.start_frame, *result.cuts]
    ends = [*result.cuts, result.frame_count]
    return [(start, end) for start, end in zip(starts, ends, strict=True) if end > start]


def _per_shot_indices(result: CutResult, per_shot: int, capacity: int) -> list[int]:
    """``per_shot`` frames spread evenly inside each shot (``shot_picks``: slice centres, on the
    candidate grid the one-pass sampler keeps for a shot that long)."""
    if per_shot < 1:
        raise ValueError(f"per_shot must be >= 1, got {per_shot}")
    chosen: list[int] = []
    for start, end in shot_bounds(result):
        chosen.extend(start + position for position in shot_picks(end - start, per_shot, capacity))
    return chosen


def _cap_evenly(indices: list[int], max_frames: int) -> list[int]:
    """At most ``max_frames`` indices spread over the whole list (not its first N)."""
    if max_frames <= 0 or len(indices) <= max_frames:
        return indices
    positions = np.unique(np.round(np.linspace(0, len(indices) - 1, max_frames)).astype(int))
    return [indices[p] for p in positions]


def _select(path: Path, result: CutResult, spec: SampleSpec, capacity: int) -> list[int]:
    if spec.mode == "interval":
        return _interval_indices(result, spec.interval_s)
    if spec.mode == "scene":
        return _per_shot_indices(result, spec.per_shot, capacity)
    if spec.mode == "keyframes":
        return [index for index, _ in keyframe_times(path, start_s=spec.start_s, end_s=spec.end_s)]
    return list(range(result.start_frame, result.frame_count))


def plan_samples(
    path: Path,
    spec: SampleSpec = SampleSpec(),
    *,
    max_frames: int = 0,
    progress: Progress | None = None,
    cut_threshold: float = 20.0,
    cut_result: CutResult | None = None,
    info: VideoInfo | None = None,
) -> SamplePlan:
    """Detect shots over the range, then choose frames by ``mode``; no frame is converted here.

    ``max_frames`` (0 = no cap) thins the choice evenly across the whole range. Pass
    ``cut_result`` (from ``detect_cuts`` over the same range) to reuse a detection pass, and
    ``info`` (``probe_video(path)``) to reuse a probe.
    """
    path = Path(path)
    info = info or probe_video(path)
    result = cut_result or detect_cuts(path, threshold=cut_threshold, start_s=spec.start_s,
                                       end_s=spec.end_s, progress=progress, info=info)
    capacity = candidate_capacity(info.width, info.height)
    indices = _cap_evenly(_select(path, result, spec, capacity), max_frames)
    samples = [FrameSample(i, round(_time_of(result, i), 6), shot_of(i, result.cuts))
               for i in indices]
    return SamplePlan(info=info, cuts=list(result.cuts), samples=samples, mode=spec.mode)


def iter_samples(
    path: Path,
    spec: SampleSpec = SampleSpec(),
    *,
    long_side: int | None = None,
    skip: Callable[[int], bool] | None = None,
    cut_threshold: float = 20.0,
    progress: Progress | None = None,
    info: VideoInfo | None = None,
) -> Generator[tuple[FrameSample, DecodedFrame], None, list[int]]:
    """One decode pass for ``interval``, ``scene`` and ``all`` modes: cuts found while the frames
    come out (scene mode: ``shot_picks``, each shot's frames given when the shot ends).

    The generator's return value (``StopIteration.value``) is the list of cuts (frame indices).

    Gives the same samples (indices, times, shots) as ``plan_samples`` with the same spec
    and no cap, in half the decoding: shots are decided by the same ``CutTracker``, and a sampled
    frame is held back (at most about a second) until its shot number is final. ``skip(index)``
    marks frames already stored by an interrupted run: they are neither converted nor yielded.
    ``info``: the caller's ``probe_video(path)``, probed here when not given.
    """
    one_of(spec.mode, ONE_PASS_MODES, "one-pass sampling mode (keyframes: use plan_samples)")
    path = Path(path)
    info = info or probe_video(path)
    size = scaled_size(info.width, info.height, long_side)
    tracker = CutTracker(info.fps, threshold=cut_threshold, keep_scores=False)  # flat in video length
    progress = ensure_progress(progress)
    total = max(1, round(((spec.end_s or info.duration_s) - spec.start_s) * info.fps))
    if spec.mode == "scene":
        return (yield from _scene_samples(
            decode_raw(path, start_s=spec.start_s, end_s=spec.end_s), tracker, spec.per_shot,
            candidate_capacity(info.width, info.height), size, skip, _Reporter(progress, total, info.fps)))
    picker = _IntervalPicker(spec.interval_s) if spec.mode == "interval" else None
    held: deque[tuple[int, DecodedFrame | None]] = deque()
    first_index: int | None = None
    for position, raw in enumerate(decode_raw(path, start_s=spec.start_s, end_s=spec.end_s)):
        first_index = raw.index if first_index is None else first_index
        tracker.push(gray_thumbnail(raw))
        if picker is None or picker.take(raw.time_s):
            wanted = skip is None or not skip(raw.index)
            frame = DecodedFrame(raw.index, raw.time_s, raw_to_array(raw, size)) if wanted else None
            held.append((position, frame))
        yield from _release(held, tracker, tracker.settled)
        if (position + 1) % max(1, round(info.fps)) == 0:
            progress.update(min(position + 1, total), total)
    tracker.finish()
    yield from _release(held, tracker, tracker.settled)
    progress.update(total, total)
    return [] if first_index is None else [first_index + position for position in tracker.cuts]


def _release(held: deque, tracker: CutTracker, settled: int
             ) -> Iterator[tuple[FrameSample, DecodedFrame]]:
    """Yield the held frames whose shot number can no longer change."""
    while held and held[0][0] < settled:
        position, frame = held.popleft()
        if frame is not None:
            shot = bisect.bisect_right(tracker.cuts, position)
            yield FrameSample(frame.index, round(frame.time_s, 6), shot), frame


class _Reporter:
    """Progress once a second of video, over the frames of the sampled range."""

    def __init__(self, progress: Progress, total: int, fps: float) -> None:
        self.progress, self.total, self.step = progress, total, max(1, round(fps))

    def __call__(self, position: int) -> None:
        if (position + 1) % self.step == 0:
            self.progress.update(min(position + 1, self.total), self.total)

    def finish(self) -> None:
        self.progress.update(self.total, self.total)


def _scene_samples(frames: Iterator, tracker: CutTracker, per_shot: int, capacity: int,
                   size: tuple[int, int], skip: Callable[[int], bool] | None, report: _Reporter,
                   ) -> Generator[tuple[FrameSample, DecodedFrame], None, list[int]]:
    """Scene mode in one pass: convert only each shot's picks (``shot_picks.picks_in_one_pass``)."""
    first: list[int] = []

    def numbered(source: Iterator) -> Iterator:
        for raw in source:
            if not first:
                first.append(raw.index)
            yield raw

    picks = picks_in_one_pass(numbered(frames), tracker, gray_thumbnail, per_shot, capacity, report)
    while True:
        try:
            raw, shot = next(picks)
        except StopIteration as finished:
            report.finish()
            return [first[0] + position for position in finished.value] if first else []
        if skip is None or not skip(raw.index):
            frame = DecodedFrame(raw.index, raw.time_s, raw_to_array(raw, size))
            yield FrameSample(raw.index, round(raw.time_s, 6), shot), frame
