"""Clip cutting against the ffmpeg command line cutting the same clips, and peak memory on a long shot.

Throughput: a generated film (default 60 s, 1280x720, 29.97 fps, a cut every 6 s) is ingested
once (scene mode: the shots); then, in interleaved pairs, our ``cut_clips_stage`` (Wan: 16 fps,
N*4+1 frames, 832x464 bucket, x264 crf 18 medium) and, per planned clip, the ffmpeg command
``ffmpeg -ss S -t D -i FILM -vf fps=16,scale=...,crop=... -frames:v N -c:v libx264 -crf 18
-preset medium`` (the same clips: start, length, size, rate, encoder settings). Both are timed by
wall clock and CPU (ours: this process; ffmpeg: its children), and the ratio is ffmpeg's time over
ours (>= 1 means we are faster; goal >= 0.8).

Memory: a single shot of ``--long-minutes`` (default 10) is generated and cut into clips (split
long shots, up to 1000 per shot) in a child process; its peak RSS is printed beside the same run
on a one-minute shot: flat means the same.

    python bench/clips.py [--seconds 60] [--rounds 3] [--long-minutes 10] [--skip-memory]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from lora_foundry.media import video
from lora_foundry.stages.clips.cut_stage import cut_clips_stage
from lora_foundry.stages.clips.cutter import cover_crop
from lora_foundry.stages.clips.rules import ClipOptions, bucket_size, plan_clips, rule_for
from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_summary, ingest_video
from lora_foundry.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def make_film(path: Path, seconds: float, shot_s: float, size: tuple[int, int], preset: str = "veryfast") -> None:
    """Moving gradients, a new colour scheme every ``shot_s`` (hard cuts), H.264 at 29.97 fps."""
    import av

    fps = Fraction(30000, 1001)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": preset}
        for index in range(round(seconds * float(fps))):
            shot = int(index / float(fps) // shot_s)
            phase = index * 3.0
            base = np.array([(shot * 53) % 200 + 30, (shot * 97) % 200 + 30, (shot * 151) % 200 + 30], np.float32)
            wave = 0.5 + 0.5 * np.sin((x + phase) / (20 + shot % 5 * 7) + y / 31)
            rgb = (base * (0.4 + 0.6 * wave[..., None])).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _cpu_children() -> float:
    """CPU seconds of the finished ffmpeg children (ours: ``time.process_time``, every thread)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_ours(film: Path, root: Path, options: ClipOptions) -> tuple[float, float, int]:
    ws = Workspace.open(root)
    frames = ingest_video(ws, film, VideoIngestOptions(mode="scene"))
    wall, cpu = time.perf_counter(), time.process_time()
    clips = cut_clips_stage(ws, frames, options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, ws.count(clips)


def time_ffmpeg(film: Path, out: Path, options: ClipOptions) -> tuple[float, float, int]:
    """The same clips cut one ffmpeg run each (what a user scripting ffmpeg would do)."""
    info = video.probe_video(film)
    ws = Workspace.open(out / "plan")
    summary = ingest_summary(ws, ingest_video(ws, film, VideoIngestOptions(mode="scene")))
    plans, _ = plan_clips(summary.cuts, video.frame_times(film), info.fps, options)
    rule = rule_for(options.model)
    size = bucket_size(info.width, info.height, rule, options.resolution)
    scaled, (left, top) = cover_crop(info.width, info.height, size)
    wall, cpu = time.perf_counter(), _cpu_children()
    for plan in plans:
        command = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-ss", f"{plan.start_s:.6f}", "-t",
                   f"{plan.duration_s + 0.5:.6f}", "-i", str(film), "-vf",
                   f"fps={rule.fps:g},scale={scaled[0]}:{scaled[1]}:flags=area,crop={size[0]}:{size[1]}:{left}:{top}",
                   "-frames:v", str(plan.frames), "-c:v", "libx264", "-crf", str(options.crf), "-preset",
                   options.preset, "-pix_fmt", "yuv420p", "-an", str(out / f"{plan.name}.mp4")]
        subprocess.run(command, check=True)
    return time.perf_counter() - wall, _cpu_children() - cpu, len(plans)


MEMORY_CHILD = r"""
import resource, sys
from pathlib import Path
from lora_foundry.workspace import Workspace
from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_video
from lora_foundry.stages.clips.cut_stage import cut_clips_stage
from lora_foundry.stages.clips.rules import ClipOptions
ws = Workspace.open(Path(sys.argv[2]))
frames = ingest_video(ws, Path(sys.argv[1]), VideoIngestOptions(mode="scene"))
clips = cut_clips_stage(ws, frames, ClipOptions(model="wan", max_per_shot=1000, preset="ultrafast"))
print(ws.count(clips), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory(film: Path, root: Path) -> tuple[int, float]:
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(film), str(root)], check=True,
                          capture_output=True, text=True, cwd=REPO)
    count, rss_kb = done.stdout.split()
    return int(count), int(rss_kb) / 1024


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def throughput(root: Path, seconds: float, rounds: int) -> None:
    film = root / "film.mp4"
    make_film(film, seconds, 6.0, (1280, 720))
    options = ClipOptions(model="wan")
    ours_wall, ours_cpu, theirs_wall, theirs_cpu = [], [], [], []
    for number in range(rounds):  # interleaved pairs: both see the same machine load
        wall, cpu, clips = time_ours(film, root / f"ours{number}", options)
        ours_wall.append(wall)
        ours_cpu.append(cpu)
        out = root / f"ffmpeg{number}"
        out.mkdir()
        wall, cpu, planned = time_ffmpeg(film, out, options)
        theirs_wall.append(wall)
        theirs_cpu.append(cpu)
        print(f"round {number + 1}: ours {ours_wall[-1]:.2f} s wall / {ours_cpu[-1]:.2f} s CPU ({clips} clips); "
              f"ffmpeg {wall:.2f} s wall / {cpu:.2f} s CPU ({planned} clips)")
    print(f"{seconds:g} s film, 1280x720 29.97 fps -> Wan clips 16 fps, crf 18 medium, {rounds} rounds")
    print(f"ours   wall {_spread(ours_wall)} s, CPU {_spread(ours_cpu)} s")
    print(f"ffmpeg wall {_spread(theirs_wall)} s, CPU {_spread(theirs_cpu)} s")
    ratios_wall = [t / o for t, o in zip(theirs_wall, ours_wall, strict=True)]
    ratios_cpu = [t / o for t, o in zip(theirs_cpu, ours_cpu, strict=True)]
    print(f"throughput ratio ours/ffmpeg: wall {_spread(ratios_wall)}, CPU {_spread(ratios_cpu)} (goal >= 0.8)")


def memory(root: Path, minutes: float) -> None:
    for label, length in (("1-minute shot", 60.0), (f"{minutes:g}-minute shot", minutes * 60)):
        film = root / f"shot_{length:.0f}.mp4"
        make_film(film, length, length + 1, (640, 360), preset="ultrafast")
        count, peak = peak_memory(film, root / f"ws_{length:.0f}")
        print(f"{label}: {count} clips, peak RSS {peak:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lf-bench-clips-"))
    try:
        if not args.skip_throughput:
            throughput(root, args.seconds, args.rounds)
        if not args.skip_memory:
            memory(root, args.long_minutes)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
