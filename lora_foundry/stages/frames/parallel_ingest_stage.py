"""Many videos at once: one decode per worker, one writer for the manifest.

Each video is one unit (``scale.units``): a worker process (or a Ray task) decodes it, writes its
frames atomically into the video's stage folder and sends the records back; this driver holds
every video's ``StageRun`` open (``Workspace.writing`` is re-entrant) and commits them as they
arrive. The stage keys, files and rows are those of ``ingest_stage.ingest_video``, so a parallel
run, a sequential run and a resumed run of either give the same workspace, byte for byte.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...media import video
from ...progress import Progress
from ...scale.local import runner_for
from ...scale.units import Kept, Runner, Send, SentProgress, Unit, default_workers
from ...workspace import Handle, Workspace, remote
from ..units_stage import Planned, run_planned
from . import ingest_stage as ingest


@dataclass(frozen=True)
class VideoJob:
    """One video's unit: what to decode (``info.path``) and where its stage writes."""

    info: video.VideoInfo
    options: ingest.VideoIngestOptions
    stage: remote.StageJob


def ingest_videos(ws: Workspace, paths: Sequence[Path], options: ingest.VideoIngestOptions, *,
                  workers: int = 0, progress: Progress | None = None, runner: Runner | None = None
                  ) -> list[Handle]:
    """Ingest every video of ``paths`` (in parallel); one handle per video, in order.

    Each video is one unit (``ingest_unit``) run by ``runner`` (a Ray cluster), else by
    ``workers`` (0 = one per core) worker processes, else (one worker or one video) in this
    process: the same work and commits wherever it runs.
    """
    options.validate()
    paths = [Path(path) for path in paths]
    if not paths:
        raise ValueError("no videos to ingest")
    runner = runner_for(runner, workers or default_workers(), len(paths))
    runner.check_shared(ws.root)
    with ws.writing(), contextlib.ExitStack() as stages:
        runs = [(stages.enter_context(ws.stage(*ingest.stage_args(path, options))), video.probe_video(path))
                for path in paths]
        planned = [Planned(st, max(1, info.frame_count),
                           Unit(f"ingest of {info.path}", ingest_unit,
                                VideoJob(info, options, remote.job_for(st)), {"num_cpus": 1}),
                           functools.partial(_finish, st, info, options))
                   for st, info in runs if not st.complete]
        run_planned(runner, planned, progress)
    return [st.handle for st, _ in runs]


def ingest_unit(job: VideoJob, send: Send, kept: Kept) -> list[int] | None:
    """In a worker: decode one video into its stage folder; returns the cuts of a one-pass run."""
    st = remote.RemoteStage(job.stage, send)
    return ingest.sample_video(st, job.info, job.options, SentProgress(send))


def _finish(st: Any, info: video.VideoInfo, options: ingest.VideoIngestOptions, cuts: list[int] | None) -> None:
    """In the driver, when a video's unit ends: a one-pass run's cuts finish its stage."""
    if cuts is not None:
        ingest.finish_one_pass(st, info, options, cuts)
