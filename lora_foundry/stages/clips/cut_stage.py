"""Clips from shots into the workspace: one MP4 per clip, never across a cut, resumable.

The input is frames from a video ingest (the shots are the cuts that ingest found) or any
selection made from them, such as one character's cluster: then only clips whose frames belong to
the selection are cut (a clip belongs by the sampled frames inside it, or, when none falls inside,
by its shot's). Each clip is a unit: its MP4 (written under a temporary name, renamed when
complete), its contact strip and its item are committed together, so a kill -9 loses at most the
clip in flight and a resumed run writes the same bytes. The source is decoded once, from the first
clip still to cut.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ... import names
from ...media import contact_sheet, video
from ...media.video_writer import Mp4Writer
from ...progress import Progress, ensure_progress
from ...workspace import Handle, Item, NewItem, Workspace
from ..frames import ingest_stage
from ..frames.ingest_summary import IngestSummary
from .cutter import CutClip, cut_clips
from .rules import ClipOptions, ClipPlan, bucket_size, plan_clips

log = logging.getLogger(__name__)

SEEK_MARGIN_S = 1.0


def _ingest(ws: Workspace, frames: Handle) -> tuple[str, IngestSummary]:
    """The ingest stage ``frames`` comes from and what it recorded (cuts, probed video)."""
    for key in ws.lineage(frames.stage_key):
        summary = IngestSummary.from_info(ws.stage_info(key))
        if summary.has_plan and summary.video is not None:
            return key, summary
    raise ValueError(f"{frames} does not come from a video ingest: clips need the shots of a video")


def _belongs(plan: ClipPlan, chosen: set[int], sampled: list[Item]) -> bool:
    """A clip belongs to a selection when most sampled frames inside it (else in its shot) are chosen."""
    end = plan.start_s + plan.duration_s
    inside = [i for i in sampled if i.time_s is not None and plan.start_s <= i.time_s <= end]
    pool = inside or [i for i in sampled if i.shot == plan.shot]
    return bool(pool) and 2 * sum(i.id in chosen for i in pool) > len(pool)


def _selected(ws: Workspace, frames: Handle, ingest_key: str, plans: list[ClipPlan]) -> list[ClipPlan]:
    if frames.stage_key == ingest_key:
        return plans
    chosen = {item.id for item in ws.items(frames)}
    sampled = ws.items(ws.handle(ingest_key))
    return [plan for plan in plans if _belongs(plan, chosen, sampled)]


def cut_clips_stage(ws: Workspace, frames: Handle, options: ClipOptions,
                    progress: Progress | None = None) -> Handle:
    """Cut the clips of ``frames``' shots for ``options.model``; returns the handle of the clips."""
    rule = options.validate()
    ingest_key, summary = _ingest(ws, frames)
    info = summary.video
    source = Path(info.path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: the ingested video is gone; clips are cut from the video itself")
    params = {"source": ingest_stage.file_identity(source), "options": asdict(options),
              "cuts": list(summary.cuts)}
    with ws.stage("cut_clips", 1, params, [frames], label=f"{rule.name} clips of {source.name}") as st:
        if st.complete:
            return st.handle
        times = video.frame_times(source)
        plans, too_short = plan_clips(summary.cuts, times, info.fps, options)
        plans = _selected(ws, frames, ingest_key, plans)
        size = bucket_size(info.width, info.height, rule, options.resolution)
        st.set_info(**{names.INFO_CLIP_PLAN: {
            "model": rule.name, "fps": rule.fps, "size": list(size), "clips": len(plans),
            "short_shots": [span.shot for span in too_short]}})
        _cut_pending(st, info, plans, size, options, progress, times)
    return st.handle


def _cut_pending(st: Any, info: video.VideoInfo, plans: list[ClipPlan], size: tuple[int, int],
                 options: ClipOptions, progress: Progress | None, times: list[float]) -> None:
    report = ensure_progress(progress)
    todo = [(position, plan) for position, plan in enumerate(plans) if not st.is_done(plan.name)]
    done = len(plans) - len(todo)
    report.update(done, len(plans))
    if not todo:
        return
    start_s = max(0.0, todo[0][1].start_s - SEEK_MARGIN_S)
    end_s = todo[-1][1].start_s + todo[-1][1].duration_s + SEEK_MARGIN_S
    raw = video.decode_raw(info.path, start_s=start_s, end_s=end_s)

    def open_writer(plan: ClipPlan) -> Mp4Writer:
        return Mp4Writer(st.path_for(f"{plan.name}.mp4"), *size, plan.fps, crf=options.crf, preset=options.preset)

    try:
        cut = cut_clips(raw, [plan for _, plan in todo], (info.width, info.height), size, open_writer, times)
        for (position, _), (result, writer) in zip(todo, cut, strict=True):
            if result is None or result.frames < result.plan.frames:
                writer.abort()
                log.warning("%s: a clip ran out of frames (damaged file?); skipped", info.path)
                continue
            writer.close()
            _record(st, info, result, position, size)
            done += 1
            report.update(done, len(plans))
    finally:
        raw.close()


def _record(st: Any, info: video.VideoInfo, result: CutClip, position: int, size: tuple[int, int]) -> None:
    plan = result.plan
    strip = contact_sheet.contact_sheet(result.strip, columns=len(result.strip), cell=max(result.strip[0].shape[:2]))
    strip_rel = st.write_image(strip, f"{plan.name}_strip.jpg", quality=90)
    meta = {names.META_CLIP: {
        "fps": plan.fps, "frames": plan.frames, "start_s": plan.start_s,
        "duration_s": round(plan.duration_s, 6), "source_first": result.source_first,
        "source_last": result.source_last, "max_offset_s": round(result.max_offset_s, 6),
        "strip": strip_rel}}
    stats = {"motion": round(result.motion, 4), "brightness": round(result.brightness, 3),
             "sharpness": round(result.sharpness, 3), "phash": str(result.phash)}
    st.emit(plan.name, position, [NewItem(
        kind=names.KIND_CLIP, relpath=st.relpath(st.path_for(f"{plan.name}.mp4")), width=size[0],
        height=size[1], source=str(info.path), frame_index=result.source_first, time_s=plan.start_s,
        shot=plan.shot, meta=meta, annotations={names.CLIP_STATS: stats})])
