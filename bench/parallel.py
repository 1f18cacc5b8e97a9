"""Ingest of a folder of videos: N worker processes against one, in the same run.

Four videos (copies of one real file under four names, so each is its own stage and every
worker has the same work) are ingested in scene mode into fresh workspaces, once with
``--workers`` worker processes and once with one (the videos one after another in this
process). Prints wall and CPU seconds (user + system of this process and its workers: on a
machine shared with other jobs CPU time is the steadier number), the wall ratio (goal >= 1.7 with
2 workers on 2 cores) and whether both workspaces hold the same rows and file bytes.

    python bench/parallel.py [--video PATH] [--videos 4] [--workers 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions
from lora_foundry.stages.frames.parallel_ingest_stage import ingest_videos
from lora_foundry.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO / "lora_foundry" / "data" / "lf_example_montage.mp4"  # the bundled clip: six shots, 525 frames


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_ingest(videos: list[Path], workers: int, root: Path) -> tuple[float, float, list]:
    """(wall s, cpu s, rows with file bytes) of one ingest of ``videos`` into a new workspace."""
    workspace = Workspace.open(root)
    options = VideoIngestOptions(mode="scene", per_shot=3)
    cpu, started = _cpu_seconds(), time.perf_counter()
    handles = ingest_videos(workspace, videos, options, workers=workers)
    wall = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu
    rows = [[(item.relpath, item.frame_index, item.shot, item.path.read_bytes()) for item in workspace.items(handle)]
            for handle in handles]
    workspace.close()
    return wall, cpu, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds; the best time of each contender is kept")
    args = parser.parse_args()
    best: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="lf_bench_parallel_") as temp:
        videos = []
        for number in range(args.videos):
            copy = Path(temp) / f"episode_{number + 1:02d}{args.video.suffix}"
            shutil.copyfile(args.video, copy)
            videos.append(copy)
        rows = {}
        for round_number in range(args.rounds):
            for workers in (1, args.workers):
                wall, cpu, rows[workers] = timed_ingest(videos, workers, Path(temp) / f"ws_{round_number}_{workers}")
                previous = best.get(workers, (wall, cpu))
                best[workers] = (min(previous[0], wall), min(previous[1], cpu))
    print(f"{args.videos} x {args.video.name}, scene mode, {os.cpu_count()} cores; best of {args.rounds}")
    for workers, (wall, cpu) in best.items():
        print(f"  {workers} worker(s): wall {wall:6.2f} s   cpu {cpu:6.2f} s")
    print(f"  wall ratio (1 worker / {args.workers} workers): {best[1][0] / best[args.workers][0]:.2f}  "
          f"(goal >= 1.7)   cpu ratio: {best[1][1] / best[args.workers][1]:.2f}")
    print(f"  same rows and bytes: {rows[1] == rows[args.workers]}")


if __name__ == "__main__":
    main()
