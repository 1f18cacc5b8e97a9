"""``lora-foundry ingest-many``: a folder or list of videos on every core, or on a Ray cluster.

Kept apart from ``commands.py`` (one line registers it there) so the scaling options stay together.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..media.video import VIDEO_SUFFIXES
from ..progress import PrintProgress
from ..scale.config import ray_address, ray_runner
from ..stages.frames.parallel_ingest_stage import ingest_videos
from ..workspace import Workspace, workspace_path
from . import locations


def video_paths(sources: list[Path]) -> list[Path]:
    """The videos named, and the videos directly inside the folders named, in name order."""
    found: list[Path] = []
    for source in sources:
        if source.is_dir():
            found.extend(sorted(p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()))
        elif source.is_file():
            found.append(source)
        else:
            raise FileNotFoundError(f"{source}: no such video or folder")
    if not found:
        raise ValueError(f"no videos in {', '.join(str(s) for s in sources)}")
    return found


def add_commands(commands: Any, add_sampling_args: Callable[[argparse.ArgumentParser], None],
                 ingest_options: Callable[[argparse.Namespace], Any]) -> None:
    """Register ``ingest-many`` on the CLI's subparsers (``cli.build_parser`` calls this)."""
    parser = commands.add_parser("ingest-many", help="sample many videos in parallel (resumable)")
    parser.add_argument("videos", type=Path, nargs="+", help="videos, or folders of videos")
    add_sampling_args(parser)
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: one per core)")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="run on this Ray cluster (default: $LF_RAY_ADDRESS, else this machine)")
    parser.set_defaults(run=lambda args: run_ingest_many(args, ingest_options(args)))


def run_ingest_many(args: argparse.Namespace, options: Any) -> int:
    started = time.monotonic()
    videos = video_paths(args.videos)
    with Workspace.open(workspace_path(locations.output_root(args.out), args.workspace)) as ws:
        handles = ingest_videos(ws, videos, options, workers=args.workers, progress=PrintProgress("ingest"),
                                runner=ray_runner(ray_address(args.ray)))
        for video, handle in zip(videos, handles, strict=True):
            print(f"{video.name}: {ws.count(handle)} frames")
    print(f"[{time.monotonic() - started:6.1f}s] ingest-many: {len(videos)} videos in {ws.root}")
    return 0
