"""Our one-pass sampler against the ffmpeg command line doing the same work, in interleaved pairs.

The clip is made by the bench (``synthetic_video.make_clip``: 64 s of 1080p H.264, hard cuts every
8 s) unless ``--video`` names one, so start-up is amortised and nothing outside the repo is read.
Each round times two pairs, the order inside a pair alternating between rounds:

- **same frames written**: ours = ``sampling.iter_samples`` (decode, cut detection, ``per_shot``
  frames per shot, or one frame per ``--interval`` s) + ``save_image`` JPEG-95 of the picks;
  ffmpeg = ``-vf select='eq(n,A)+eq(n,B)+...' -vsync vfr -q:v 2``: the same frame numbers decoded
  and written as JPEG. Equal outputs; ffmpeg does not even have to find the cuts.
- **ingest stage writes the same frames**: ours = the product's path, ``ingest_video`` into a new
  workspace (probe, the same picks as JPEG-95, each recorded in its manifest); ffmpeg as in the
  first pair.
- **nothing written**: ours = the same sampler, picks converted to RGB and dropped; ffmpeg =
  ``select='gt(scene,0.3)'`` to the null muxer (its own scene detection, nothing written).

Ratio = ffmpeg's time / ours (>= 1: we are at least as fast; goal >= 0.9), per pair, for wall and
CPU time (user + system of every thread; ffmpeg's from its process). Printed: the median ratio and
its spread (min..max) over the rounds, and the load average before and after (on a shared
machine the CPU ratio is the steadier one).

    python bench/ingest.py [--video PATH] [--mode scene|interval] [--per-shot 3] [--interval 1.0]
                           [--rounds 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_video import make_clip  # noqa: E402

from lora_foundry.media.images import save_image  # noqa: E402
from lora_foundry.media.sampling import SampleSpec, iter_samples  # noqa: E402
from lora_foundry.media.video import probe_video  # noqa: E402
from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_video  # noqa: E402
from lora_foundry.workspace import Workspace  # noqa: E402


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed(run: Callable[[], object], child: bool) -> tuple[float, float, object]:
    """(wall s, CPU s, result): CPU of this process, or of the child processes ``run`` waited for."""
    who = resource.RUSAGE_CHILDREN if child else resource.RUSAGE_SELF
    cpu, wall = _cpu(who), time.perf_counter()
    result = run()
    return time.perf_counter() - wall, _cpu(who) - cpu, result


def ours(video: Path, args: argparse.Namespace, out: Path | None) -> list[int]:
    """Frame numbers our sampler picks; with ``out``, each written there as JPEG-95."""
    picked = []
    for sample, frame in iter_samples(video, SampleSpec(args.mode, args.interval, args.per_shot)):
        if out is not None:
            save_image(frame.rgb, out / f"{sample.frame_index:08d}.jpg", quality=95)
        picked.append(sample.frame_index)
    return picked


def ours_stage(video: Path, args: argparse.Namespace, out: Path) -> None:
    """The product's ingest: the same sampler, the picks written and recorded in a workspace."""
    options = VideoIngestOptions(mode=args.mode, interval_s=args.interval, per_shot=args.per_shot)
    ingest_video(Workspace.open(out / "ws"), video, options)


def ffmpeg(video: Path, select: str, out: Path | None) -> None:
    target = ["-vsync", "vfr", "-q:v", "2", str(out / "out_%05d.jpg")] if out is not None else ["-f", "null", "-"]
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(video), "-vf", f"select='{select}'", *target],
                   check=True)


def pairs(video: Path, args: argparse.Namespace, picked: list[int], temp: Path, number: int
          ) -> dict[str, tuple[float, float]]:
    """One round: (wall ratio, CPU ratio) of each pair, ffmpeg / ours."""
    same = "+".join(f"eq(n\\,{index})" for index in picked)
    contenders = {
        "same frames written": (lambda out: ffmpeg(video, same, out), lambda out: ours(video, args, out), True),
        "ingest stage writes the same frames": (lambda out: ffmpeg(video, same, out),
                                               lambda out: ours_stage(video, args, out), True),
        "nothing written": (lambda out: ffmpeg(video, "gt(scene\\,0.3)", None),
                            lambda out: ours(video, args, None), False),
    }
    ratios = {}
    for name, (theirs, mine, writes) in contenders.items():
        folders = {side: temp / f"r{number}_{name[:4]}_{side}" for side in ("ffmpeg", "ours")}
        for folder in folders.values():
            folder.mkdir()
        order = ("ffmpeg", "ours") if number % 2 == 0 else ("ours", "ffmpeg")
        times = {}
        for side in order:
            out = folders[side] if writes else None
            run = functools.partial(theirs if side == "ffmpeg" else mine, out)
            times[side] = timed(run, child=side == "ffmpeg")[:2]
        if writes:
            counts = [len(list(folder.rglob("*.jpg"))) for folder in folders.values()]
            if counts[0] != counts[1]:
                raise RuntimeError(f"unequal work: ffmpeg wrote {counts[0]} frames, ours {counts[1]}")
        ratios[name] = (times["ffmpeg"][0] / times["ours"][0], times["ffmpeg"][1] / times["ours"][1])
        print(f"  round {number + 1} {name:<34} ffmpeg {times['ffmpeg'][0]:6.2f} s wall {times['ffmpeg'][1]:6.2f} s "
              f"CPU | ours {times['ours'][0]:6.2f} s wall {times['ours'][1]:6.2f} s CPU", flush=True)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="default: a 64 s 1080p clip made by the bench")
    parser.add_argument("--mode", choices=["scene", "interval"], default="scene")
    parser.add_argument("--per-shot", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("the ffmpeg command line is needed for this comparison")
    with tempfile.TemporaryDirectory(prefix="lf_bench_ingest_") as folder:
        temp = Path(folder)
        video = args.video or make_clip(temp / "clip_1080p.mp4")
        info = probe_video(video)
        picked = ours(video, args, None)
        print(f"{video.name}: {info.width}x{info.height} {info.codec}, {info.frame_count} frames, {info.fps:g} fps; "
              f"{args.mode} mode, {len(picked)} frames picked; load average {os.getloadavg()[0]:.1f}", flush=True)
        rounds = [pairs(video, args, picked, temp, number) for number in range(args.rounds)]
    print(f"ratio = ffmpeg time / ours (goal >= 0.9), median [min..max] of {args.rounds} interleaved pairs; "
          f"load average now {os.getloadavg()[0]:.1f}")
    for name in rounds[0]:
        for column, label in ((0, "wall"), (1, "CPU")):
            values = [r[name][column] for r in rounds]
            print(f"  {name:<34} {label:<4} {statistics.median(values):5.2f}  [{min(values):.2f}..{max(values):.2f}]")


if __name__ == "__main__":
    main()
