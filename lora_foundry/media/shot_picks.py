"""Scene sampling in one decode pass: ``per_shot`` frames of every shot, picked when it ends.

Why not plan first: planning decoded the whole video a second time just to learn the shot
lengths (0.43x the throughput of ffmpeg's select filter). Here every decoded frame stays
unconverted (the decoder's own YUV picture) in two bounded buffers:

- a window of the last frames whose shot number the ``CutTracker`` may still change (about
  ``fps/2 + min_shot_s*fps`` frames, a second of video);
- a ``ShotCandidates`` set for the current shot that thins itself evenly: it keeps every
  ``stride``-th frame of the shot and doubles the stride when it holds more than its capacity.

When a shot ends, ``shot_picks`` chooses the frames at the centres of ``per_shot`` equal
slices, snapped to the candidate grid; only those are converted. ``plan_samples`` uses the same
``shot_picks`` with the same capacity, so one pass and two passes pick the same frames. A shot of
at most ``capacity`` frames (128 by default: 5 s at 25 fps) keeps every frame, so its picks are
exactly the slice centres; a longer shot's picks move to the nearest multiple of its stride (at
most ``stride / 2`` frames). Memory is flat in video length: for a 10-minute single 1080p shot
the candidates are at most 82 frames of 3.1 MB (256 MB) plus the window (~25 frames).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Generator, Iterator

from .video_types import RawFrame

CANDIDATE_LIMIT = 128
"""Most candidate frames kept per shot."""

CANDIDATE_BUDGET_BYTES = 256 * 2**20
"""Most bytes of decoded (YUV 4:2:0) candidate frames kept per shot; lowers the count for 4K."""

MIN_CANDIDATES = 16


def candidate_capacity(width: int, height: int) -> int:
    """How many candidate frames of one shot are kept for a video of this picture size."""
    frame_bytes = max(1, width * height * 3 // 2)
    return max(MIN_CANDIDATES, min(CANDIDATE_LIMIT, CANDIDATE_BUDGET_BYTES // frame_bytes))


def grid_stride(length: int, capacity: int) -> int:
    """The stride a thinned set of a ``length``-frame shot ends with: the least power of two that
    leaves at most ``capacity`` frames."""
    stride = 1
    while -(-length // stride) > capacity:
        stride *= 2
    return stride


def shot_picks(length: int, per_shot: int, capacity: int) -> list[int]:
    """Positions (from the shot's first frame) of the frames to keep from a shot of ``length``.

    The centres of ``per_shot`` equal slices, which keep half a slice away from both cut edges
    (a frame there may carry compression smear or the previous shot's tail), snapped to the
    candidate grid of a shot that long.
    """
    if per_shot < 1:
        raise ValueError(f"per_shot must be >= 1, got {per_shot}")
    if length < 1:
        return []
    stride = grid_stride(length, capacity)
    last = (length - 1) // stride * stride
    centres = (int((k + 0.5) * length / per_shot) for k in range(per_shot))
    return sorted({min(last, (centre + stride // 2) // stride * stride) for centre in centres})


class ShotCandidates:
    """Every ``stride``-th frame of the shot so far, never more than ``capacity`` of them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.stride = 1
        self.length = 0
        self.kept: dict[int, RawFrame] = {}

    def add(self, raw: RawFrame) -> None:
        if self.length % self.stride == 0:
            self.kept[self.length] = raw
            if len(self.kept) > self.capacity:
                self.stride *= 2
                self.kept = {p: frame for p, frame in self.kept.items() if p % self.stride == 0}
        self.length += 1

    def picks(self, per_shot: int) -> list[RawFrame]:
        return [self.kept[position] for position in shot_picks(self.length, per_shot, self.capacity)]


PickedFrame = tuple[RawFrame, int]
"""A picked raw frame and its shot number."""


def picks_in_one_pass(frames: Iterator[RawFrame], tracker, thumbnail: Callable[[RawFrame], object],
                      per_shot: int, capacity: int, on_frame: Callable[[int], None] | None = None,
                      ) -> Generator[PickedFrame, None, list[int]]:
    """Yield each shot's picks as the shot ends; returns the cut positions (frames from the first).

    ``tracker`` is a fresh ``CutTracker``; ``thumbnail(raw)`` the grey picture it compares;
    ``on_frame(position)`` is called for every decoded frame (progress).
    """
    window: deque[tuple[int, RawFrame]] = deque()
    state = _Shot(ShotCandidates(capacity))
    for position, raw in enumerate(frames):
        tracker.push(thumbnail(raw))
        window.append((position, raw))
        while window and window[0][0] < tracker.settled:
            yield from state.feed(*window.popleft(), tracker.cuts, per_shot)
        if on_frame is not None:
            on_frame(position)
    tracker.finish()
    while window:
        yield from state.feed(*window.popleft(), tracker.cuts, per_shot)
    yield from state.close(per_shot)
    return list(tracker.cuts)


class _Shot:
    """The shot being filled: its number and its candidates."""

    def __init__(self, candidates: ShotCandidates) -> None:
        self.number = 0
        self.candidates = candidates

    def feed(self, position: int, raw: RawFrame, cuts: list[int], per_shot: int) -> Iterator[PickedFrame]:
        shot = bisect.bisect_right(cuts, position)
        if shot != self.number:
            yield from self.close(per_shot)
            self.number, self.candidates = shot, ShotCandidates(self.candidates.capacity)
        self.candidates.add(raw)

    def close(self, per_shot: int) -> Iterator[PickedFrame]:
        picked = self.candidates.picks(per_shot)
        self.candidates = ShotCandidates(self.candidates.capacity)
        for raw in picked:
            yield raw, self.number
