"""Frames into the workspace: from a video (sampled) or from a folder of images.

A video is probed once per run (the ``VideoInfo`` is passed down to every media function) and
decoded once in interval, scene and all-frames modes (cuts are found while the frames come out;
scene mode picks each shot's frames when it ends, ``media/shot_picks.py``). Keyframe sampling and
a ``max_frames`` cap read it twice: once as tiny grey thumbnails to find the cuts and plan the
samples (kept in the stage's info, so a resumed run never plans again), once to decode the
planned frames and write them. Frames are written one by one (never one big tensor), each with its provenance:
source file, frame index, timestamp, shot. What the stage records about the run (plan, video,
missing frames, skipped files) is written and read as an ``IngestSummary``; readers call
``ingest_summary``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ... import names
from ...choices import one_of
from ...media import images, sampling, video
from ...progress import Progress
from ...read_roots import ReadRoots
from ...workspace import Handle, NewItem, Workspace
from .ingest_summary import IngestSummary, Sample, SkippedFile

log = logging.getLogger(__name__)

FRAME_FORMATS = ("jpg", "png", "webp")


@dataclass(frozen=True)
class VideoIngestOptions:
    """How to sample a video; every field goes into the stage key."""

    mode: str = "scene"
    interval_s: float = 1.0
    per_shot: int = 3
    start_s: float = 0.0
    end_s: float = 0.0
    max_frames: int = 0
    long_side: int = 0
    frame_format: str = "jpg"
    jpeg_quality: int = 95

    def sample_spec(self) -> sampling.SampleSpec:
        """The frames to take, as the samplers read them (checked there; an ``end_s`` of 0 = the end)."""
        return sampling.SampleSpec(self.mode, self.interval_s, self.per_shot, self.start_s, self.end_s or None)

    def validate(self) -> None:
        self.sample_spec()
        one_of(self.frame_format, FRAME_FORMATS, "frame format")


def file_identity(path: Path) -> dict[str, Any]:
    """What makes a source file 'the same file' for caching: its path, size and modification time."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def ingest_video(ws: Workspace, path: Path, options: VideoIngestOptions, progress: Progress | None = None,
                 plan_progress: Progress | None = None, info: video.VideoInfo | None = None) -> Handle:
    """Sample ``path`` into ``ws`` and return the handle of the frames; resumes where a run stopped.

    Modes that plan first (keyframes, a cap) decode the video twice: the
    planning pass reports to ``plan_progress`` (default: ``progress``), extraction to ``progress``.
    ``info`` is the probe of ``path`` when the caller has made it already (probing decodes a frame).
    """
    options.validate()
    path = Path(path)
    info = info or video.probe_video(path)
    with ws.stage(*stage_args(path, options)) as st:
        if st.complete:
            return st.handle
        cuts = sample_video(st, info, options, progress, plan_progress)
        if cuts is not None:
            finish_one_pass(st, info, options, cuts)
    return st.handle


def stage_args(path: Path, options: VideoIngestOptions) -> tuple[str, int, dict[str, Any], tuple, str, str]:
    """``Workspace.stage`` arguments of the ingest of ``path``: the same key however it is run."""
    params = {"source": file_identity(path), "options": asdict(options)}
    return "ingest_video", 1, params, (), "", f"frames of {path.name}"


def sample_video(st: Any, info: video.VideoInfo, options: VideoIngestOptions, progress: Progress | None = None,
                 plan_progress: Progress | None = None) -> list[int] | None:
    """The decoding work of an ingest on a stage run, or on a worker's ``RemoteStage``.

    Returns the cuts of a one-pass run (then ``finish_one_pass`` records the summary where the
    manifest is), None when the plan recorded them already.
    """
    summary = IngestSummary.from_info(st.info)
    if _single_pass(options, info) and not summary.has_plan:  # a plan: resume a two-pass run
        return _sample_in_one_pass(st, info, options, progress)
    if not summary.has_plan:
        summary = _plan(info, options, plan_progress or progress)
        st.set_info(**summary.to_info())
    _decode_planned(st, info, summary.samples, options, progress)
    return None


def finish_one_pass(st: Any, info: video.VideoInfo, options: VideoIngestOptions, cuts: Sequence[int]) -> None:
    """Record what a one-pass run found: the cuts and every stored frame (this run's and earlier)."""
    samples = tuple((i.frame_index, i.time_s, i.shot) for i in st.ws.items(st.handle))
    st.set_info(**IngestSummary(options.mode, tuple(cuts), samples, info).to_info())


def ingest_summary(ws: Workspace, handle: Handle) -> IngestSummary:
    """What the ingest that made ``handle`` (``ingest_video`` or ``ingest_folder``) recorded."""
    return IngestSummary.from_info(ws.stage_info(handle))


def _single_pass(options: VideoIngestOptions, info: video.VideoInfo) -> bool:
    """Interval, scene and all-frames sampling need no plan unless a cap must thin them evenly."""
    if options.mode not in sampling.ONE_PASS_MODES:
        return False
    if not options.max_frames:
        return True
    if options.mode == "scene":
        return False
    span = (options.end_s or info.duration_s) - options.start_s
    expected = span * info.fps if options.mode == "all" else span / options.interval_s
    return expected < 0.9 * options.max_frames


def _sample_in_one_pass(st: Any, info: video.VideoInfo, options: VideoIngestOptions,
                        progress: Progress | None) -> list[int]:
    """Decode once, store each sampled frame as its shot becomes known; returns the cuts."""
    path = info.path
    samples = sampling.iter_samples(
        path, options.sample_spec(), info=info, long_side=options.long_side or None,
        skip=lambda index: st.is_done(f"f{index}"), progress=progress,
    )
    while True:
        try:
            sample, frame = next(samples)
        except StopIteration as finished:
            return list(finished.value or [])
        _store_frame(st, path, frame, (sample.time_s, sample.shot), sample.frame_index, options)


def _plan(info: video.VideoInfo, options: VideoIngestOptions, progress: Progress | None) -> IngestSummary:
    plan = sampling.plan_samples(info.path, options.sample_spec(), info=info, max_frames=options.max_frames,
                                 progress=progress)
    samples = tuple((s.frame_index, s.time_s, s.shot) for s in plan.samples)
    return IngestSummary(plan.mode, tuple(plan.cuts), samples, info)


def _decode_planned(st: Any, info: video.VideoInfo, planned: Sequence[Sample], options: VideoIngestOptions,
                    progress: Progress | None) -> None:
    path = info.path
    samples = {index: (time_s, shot) for index, time_s, shot in planned}
    units = [f"f{index}" for index in samples]
    wanted = {index for index in samples if not st.is_done(f"f{index}")}
    if not wanted:
        return
    todo = st.pending_units(units, progress)
    end_s = options.end_s or None
    seen = 0
    for frame in video.iter_frames(path, info=info, start_s=options.start_s, end_s=end_s,
                                   long_side=options.long_side or None, wanted=wanted.__contains__):
        if frame.index not in wanted:
            continue
        position, unit = next(todo)
        if unit != f"f{frame.index}":
            raise RuntimeError(f"{path}: decoder returned frame {frame.index}, expected {unit}")
        _store_frame(st, path, frame, samples[frame.index], position, options)
        seen += 1
    next(todo, None)  # resume the unit generator once more: it reports the last frame as done
    if seen < len(wanted):
        missing = sorted(wanted - {int(u[1:]) for u in units if st.is_done(u)})
        log.warning("%s: %d planned frames did not decode (truncated file?)", path, len(missing))
        st.set_info(**IngestSummary(missing_frames=tuple(missing)).to_info())


def _store_frame(st: Any, path: Path, frame: video.DecodedFrame, sample: tuple[float, int], position: int,
                 options: VideoIngestOptions) -> None:
    time_s, shot = sample
    name = f"{frame.index:08d}.{options.frame_format}"
    rel = st.write_image(frame.rgb, name, quality=options.jpeg_quality)
    height, width = frame.rgb.shape[:2]
    st.emit(
        f"f{frame.index}",
        position,
        [NewItem(kind=names.KIND_FRAME, relpath=rel, width=width, height=height, source=str(path),
                 frame_index=frame.index, time_s=time_s, shot=shot)],
    )


def ingest_folder(ws: Workspace, folder: Path, long_side: int = 0, recursive: bool = False,
                  progress: Progress | None = None, roots: ReadRoots | None = None) -> Handle:
    """Copy every readable image of ``folder`` into ``ws`` as PNG; broken files are skipped and listed.
    Files that link outside ``roots`` (default: the folder) are never read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = images.list_image_files(folder, recursive=recursive, roots=roots)
    if not files:
        raise ValueError(f"image folder {folder} has no png/jpg/webp images")
    params = {"folder": str(folder.resolve()), "files": [file_identity(f) for f in files],
              "long_side": long_side}
    with ws.stage("ingest_folder", 1, params, label=f"images of {folder.name}") as st:
        if st.complete:
            return st.handle
        skipped = list(IngestSummary.from_info(st.info).skipped)
        for position, unit in st.pending_units([str(i) for i in range(len(files))], progress):
            source = files[position]
            try:
                pixels = images.load_image(source)
            except images.ImageError as error:
                log.warning("skipping %s: %s", source, error)
                skipped.append(SkippedFile(str(source), str(error)))
                st.set_info(**IngestSummary(skipped=tuple(skipped)).to_info())
                st.emit(unit, position, [])
                continue
            if long_side:
                pixels = images.resize_long_side(pixels, long_side)
            rel = st.write_image(pixels, f"{position:06d}.png")
            height, width = pixels.shape[:2]
            st.emit(unit, position, [NewItem(kind=names.KIND_IMAGE, relpath=rel, width=width, height=height,
                                             source=str(source), meta={names.META_NAME: source.name})])
    return st.handle
