"""Interval and all-frames sampling in ONE decode pass, with cut detection riding along.

The decoder is the cost (FIELD_NOTES: ~140 fps decode-only at 1080p on two cores), so planning
with a separate cut-detection pass would halve throughput. Here each decoded frame feeds a tiny
grey thumbnail to the cut scorer (nearly free: swscale makes it straight from YUV) and, when the
interval rule picks it, is converted to RGB and written. Shot ids are known only when the pass
ends, so they are filled in then, in one transaction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..media import cuts, video
from ..progress import Progress, ensure_progress
from ..workspace import NewItem


class IntervalPicker:
    """Takes the first frame at or after each multiple of ``interval_s`` from the first frame."""

    def __init__(self, interval_s: float | None) -> None:
        self._interval_s = interval_s
        self._origin: float | None = None
        self._next = 0.0

    def take(self, time_s: float) -> bool:
        if self._interval_s is None:
            return True
        if self._origin is None:
            self._origin = self._next = time_s
        if time_s + 1e-6 < self._next:
            return False
        steps = int((time_s + 1e-6 - self._origin) // self._interval_s) + 1
        self._next = self._origin + steps * self._interval_s
        return True


def scan_and_store(st: Any, path: Any, options: Any, progress: Progress | None) -> dict[str, Any]:
    """Decode once: score every frame for cuts, store the picked frames; returns the plan."""
    info = video.probe_video(path)
    report = ensure_progress(progress)
    total = max(1, info.frame_count)
    size = video.scaled_size(info.width, info.height, options.long_side or None)
    picker = IntervalPicker(options.interval_s if options.mode == "interval" else None)
    tracker = cuts.CutTracker(info.fps)
    indices: list[int] = []
    samples: list[list[Any]] = []
    end_s = options.end_s or None
    for decoded, raw in enumerate(video.decode_raw(path, start_s=options.start_s, end_s=end_s), start=1):
        tracker.push(cuts.gray_thumbnail(raw))
        indices.append(raw.index)
        if picker.take(raw.time_s):
            position = len(samples)
            samples.append([raw.index, round(raw.time_s, 6), 0])
            if not st.is_done(f"f{raw.index}"):
                _store(st, path, raw, video.raw_to_array(raw, size), position, options)
        if decoded % 25 == 0:
            report.update(min(decoded, total), total)
    report.update(total, total)
    if not indices:
        raise video.MediaError(f"{path}: no frame could be decoded in the chosen time range")
    tracker.finish()
    found = [indices[p] for p in tracker.cuts]
    for sample in samples:
        sample[2] = cuts.shot_of(sample[0], found)
    st.set_shots({position: sample[2] for position, sample in enumerate(samples)})
    return {"cuts": found, "samples": samples, "mode": options.mode}


def _store(st: Any, path: Any, raw: Any, rgb: np.ndarray, position: int, options: Any) -> None:
    rel = st.write_image(rgb, f"{raw.index:08d}.{options.frame_format}", quality=options.jpeg_quality)
    height, width = rgb.shape[:2]
    st.emit(f"f{raw.index}", position,
            [NewItem(kind="frame", relpath=rel, width=width, height=height, source=str(path),
                     frame_index=raw.index, time_s=round(raw.time_s, 6), shot=None)])
