"""What an ingest stage tells the readers of its frames, as one typed value.

The CLI and the load nodes used to dig into the stage info (``info["plan"]["cuts"]``,
``info["video"]["fps"]``, ``.get("missing_frames")``, ``.get("skipped")``): each reader knew the
layout, and a renamed key would have broken them without an error. ``IngestSummary`` is the one
writer (``to_info``) and reader (``from_info``) of that layout; the ingest stage writes through it
and ``ingest_stage.ingest_summary`` reads through it. The stored layout is the one workspaces
have always had, so workspaces written before read unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ... import names
from ...media.video_types import VideoInfo

FALLBACK_FPS = 25.0
"""Frame rate assumed for cut times when the file declared none (a stream without timing)."""

Sample = tuple[int, float, int]
"""One planned frame: (frame index, time in seconds, shot number)."""


@dataclass(frozen=True)
class SkippedFile:
    """An image of a folder that could not be read, and why."""

    file: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "error": self.error}


@dataclass(frozen=True)
class IngestSummary:
    """A video ingest's plan (mode, cuts, samples) and probed video, the planned frames that did not
    decode; or a folder ingest's skipped files. Empty fields were not recorded."""

    mode: str = ""
    cuts: tuple[int, ...] = ()
    samples: tuple[Sample, ...] = ()
    video: VideoInfo | None = None
    missing_frames: tuple[int, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()

    @property
    def has_plan(self) -> bool:
        """True once a video ingest recorded its plan (a resumed run then never plans again)."""
        return bool(self.mode)

    @property
    def shots(self) -> int:
        """Shots in the sampled range: one more than the cuts."""
        return len(self.cuts) + 1

    def cut_times(self) -> list[float]:
        """Each cut's time in seconds (two decimals), from the probed frame rate."""
        fps = (self.video.fps if self.video is not None else 0.0) or FALLBACK_FPS
        return [round(cut / fps, 2) for cut in self.cuts]

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> IngestSummary:
        """Read an ingest stage's info (any workspace version); missing keys give empty fields."""
        plan = info.get(names.INFO_PLAN) or {}
        return cls(
            mode=str(plan.get("mode", "")),
            cuts=tuple(int(cut) for cut in plan.get("cuts", [])),
            samples=tuple((int(index), float(time_s), int(shot)) for index, time_s, shot in plan.get("samples", [])),
            video=_video_from(info[names.INFO_VIDEO]) if info.get(names.INFO_VIDEO) else None,
            missing_frames=tuple(int(index) for index in info.get(names.INFO_MISSING_FRAMES, [])),
            skipped=tuple(SkippedFile(str(entry["file"]), str(entry["error"])) for entry in info.get(names.INFO_SKIPPED, [])),
        )

    def to_info(self) -> dict[str, Any]:
        """The stage-info keys for the recorded fields, laid out as workspaces always stored them."""
        info: dict[str, Any] = {}
        if self.has_plan:
            info[names.INFO_PLAN] = {"cuts": list(self.cuts), "samples": [list(sample) for sample in self.samples],
                            "mode": self.mode}
        if self.video is not None:
            info[names.INFO_VIDEO] = asdict(self.video) | {"path": str(self.video.path)}
        if self.missing_frames:
            info[names.INFO_MISSING_FRAMES] = list(self.missing_frames)
        if self.skipped:
            info[names.INFO_SKIPPED] = [entry.as_dict() for entry in self.skipped]
        return info


def _video_from(stored: Mapping[str, Any]) -> VideoInfo:
    return VideoInfo(
        path=Path(str(stored.get("path", ""))), width=int(stored.get("width", 0)),
        height=int(stored.get("height", 0)), fps=float(stored.get("fps", 0.0)),
        frame_count=int(stored.get("frame_count", 0)), duration_s=float(stored.get("duration_s", 0.0)),
        codec=str(stored.get("codec", "")),
    )
