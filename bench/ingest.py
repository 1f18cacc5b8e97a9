"""Our decode-and-sample speed against the ffmpeg command line doing the same sampling.

ffmpeg: ``ffmpeg -i VIDEO -vf fps=1/INTERVAL -q:v 2 out_%05d.jpg`` (decode everything, keep one
frame per interval, write JPEGs). Ours, timed in the same run on the same file:

- extract: ``iter_frames`` (sequential decode, only the wanted frames converted) + ``save_image``
  JPEG-95 of the frames the interval plan picked: the like-for-like comparison (goal ratio >= 0.9);
- plan + extract: the same plus a separate cut-detection pass that gives every frame its shot id
  (a second decode of the file, which ffmpeg's command does not do);
- one pass: ``sampling.iter_samples``: shots detected while the same frames are extracted;
- full ingest (when the workspace exists): ``stages.ingest.ingest_video`` into a fresh workspace,
  plan, extraction, manifest rows and all.

Scene mode (``--mode scene``): ffmpeg ``-vf "select='gt(scene,0.3)'" -vsync vfr -q:v 2``
against our one-pass scene sampling (``iter_samples(mode="scene")`` + JPEG-95), the old two
passes (``plan_samples`` + ``iter_frames``), and the full one-pass ingest into a workspace; the
one-pass and two-pass JPEGs are compared byte for byte.

Speeds are source frames per second (frames of the video gone through / wall time).

    python bench/ingest.py [--video PATH] [--mode interval|scene] [--interval 1.0]
                           [--per-shot 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from lora_foundry.media.images import save_image
from lora_foundry.media.sampling import iter_samples, plan_samples
from lora_foundry.media.video import iter_frames, probe_video

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO / "lora_foundry" / "data" / "lf_example_montage.mp4"  # the bundled clip: six shots, 525 frames


def time_ffmpeg(video: Path, interval_s: float, out: Path) -> tuple[float, int]:
    out.mkdir()
    command = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(video), "-vf", f"fps=1/{interval_s}",
               "-q:v", "2", str(out / "out_%05d.jpg")]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started, len(list(out.glob("*.jpg")))


def time_plan(video: Path, interval_s: float):
    started = time.perf_counter()
    plan = plan_samples(video, mode="interval", interval_s=interval_s)
    return time.perf_counter() - started, plan


def time_extract(video: Path, wanted: frozenset[int], out: Path) -> tuple[float, int]:
    out.mkdir()
    started = time.perf_counter()
    written = 0
    for frame in iter_frames(video, wanted=wanted.__contains__):
        save_image(frame.rgb, out / f"{frame.index:08d}.jpg", quality=95)
        written += 1
    return time.perf_counter() - started, written


def time_one_pass(video: Path, interval_s: float, out: Path) -> tuple[float, int]:
    out.mkdir()
    started = time.perf_counter()
    written = 0
    for sample, frame in iter_samples(video, mode="interval", interval_s=interval_s):
        save_image(frame.rgb, out / f"{sample.frame_index:08d}.jpg", quality=95)
        written += 1
    return time.perf_counter() - started, written


def time_full_ingest(video: Path, interval_s: float, root: Path) -> tuple[float, int] | None:
    """Seconds and frame count of the lead's ingest stage, or None when it is not there yet."""
    try:
        from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_video
        from lora_foundry.workspace import Workspace
    except ImportError:
        return None
    workspace = Workspace.open(root / "workspace")
    started = time.perf_counter()
    handle = ingest_video(workspace, video, VideoIngestOptions(mode="interval", interval_s=interval_s))
    seconds = time.perf_counter() - started
    return seconds, len(workspace.items(handle))


def time_ffmpeg_scene(video: Path, out: Path) -> tuple[float, int]:
    out.mkdir()
    command = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(video), "-vf", "select='gt(scene,0.3)'",
               "-vsync", "vfr", "-q:v", "2", str(out / "out_%04d.jpg")]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started, len(list(out.glob("*.jpg")))


def time_scene_one_pass(video: Path, per_shot: int, out: Path) -> tuple[float, int]:
    out.mkdir()
    started = time.perf_counter()
    written = 0
    for sample, frame in iter_samples(video, mode="scene", per_shot=per_shot):
        save_image(frame.rgb, out / f"{sample.frame_index:08d}.jpg", quality=95)
        written += 1
    return time.perf_counter() - started, written


def time_scene_two_pass(video: Path, per_shot: int, out: Path) -> tuple[float, int]:
    started = time.perf_counter()
    plan = plan_samples(video, mode="scene", per_shot=per_shot)
    _, written = time_extract(video, plan.wanted, out)
    return time.perf_counter() - started, written


def time_scene_ingest(video: Path, per_shot: int, root: Path) -> tuple[float, int]:
    from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_video
    from lora_foundry.workspace import Workspace

    workspace = Workspace.open(root / "workspace")
    started = time.perf_counter()
    handle = ingest_video(workspace, video, VideoIngestOptions(mode="scene", per_shot=per_shot))
    seconds = time.perf_counter() - started
    return seconds, len(workspace.items(handle))


def same_bytes(first: Path, second: Path) -> str:
    """'identical (N files)' or which files differ between two folders of JPEGs."""
    names = sorted(path.name for path in first.glob("*.jpg"))
    if names != sorted(path.name for path in second.glob("*.jpg")):
        return "DIFFERENT frame sets"
    differ = [name for name in names if (first / name).read_bytes() != (second / name).read_bytes()]
    return f"identical ({len(names)} files)" if not differ else f"DIFFERENT bytes: {differ}"


def _scene_round(video: Path, per_shot: int, root: Path) -> dict[str, tuple[float, float, int]]:
    root.mkdir()
    results: dict[str, tuple[float, float, int]] = {}
    _measured(results, "ffmpeg CLI", lambda: time_ffmpeg_scene(video, root / "ffmpeg"))
    _measured(results, "ours: one pass", lambda: time_scene_one_pass(video, per_shot, root / "one"))
    _measured(results, "ours: two passes", lambda: time_scene_two_pass(video, per_shot, root / "two"))
    _measured(results, "ours: full ingest", lambda: time_scene_ingest(video, per_shot, root))
    return results


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children, all threads."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _measured(results: dict, name: str, run) -> object:
    """Run ``run()`` -> (seconds, count[, extra]); store (wall s, cpu s, count) under ``name``."""
    cpu_before = _cpu_seconds()
    outcome = run()
    if outcome is None:
        return None
    results[name] = (outcome[0], _cpu_seconds() - cpu_before, outcome[1])
    return outcome


def _one_round(video: Path, interval_s: float, root: Path) -> dict[str, tuple[float, float, int]]:
    root.mkdir()
    results: dict[str, tuple[float, float, int]] = {}
    _measured(results, "ffmpeg CLI", lambda: time_ffmpeg(video, interval_s, root / "ffmpeg"))
    plan_s, plan = _measured(results, "ours: plan (cuts)", lambda: (*time_plan(video, interval_s),))
    results["ours: plan (cuts)"] = (*results["ours: plan (cuts)"][:2], len(plan.cuts))
    _measured(results, "ours: extract", lambda: time_extract(video, plan.wanted, root / "ours"))
    wall, cpu, count = results["ours: extract"]
    results["ours: plan + extract"] = (wall + plan_s, cpu + results["ours: plan (cuts)"][1], count)
    _measured(results, "ours: one pass", lambda: time_one_pass(video, interval_s, root / "one_pass"))
    _measured(results, "ours: full ingest", lambda: time_full_ingest(video, interval_s, root))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--mode", choices=["interval", "scene"], default="interval")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--per-shot", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds; the best time of each contender is kept, so a "
                             "burst of load on a shared machine does not pick the winner")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("the ffmpeg command line is needed for this comparison")
    info = probe_video(args.video)
    frames = info.frame_count
    sampling = (f"{args.per_shot} frames per shot" if args.mode == "scene"
                else f"one frame every {args.interval:g} s")
    print(f"{args.video.name}: {info.width}x{info.height} {info.codec}, {frames} frames, "
          f"{info.fps:g} fps; {sampling}, JPEG; best of {args.rounds}")
    best: dict[str, tuple[float, float, int]] = {}
    with tempfile.TemporaryDirectory(prefix="lf_bench_ingest_") as temp:
        for round_number in range(args.rounds):
            root = Path(temp) / f"r{round_number}"
            measured_round = (_scene_round(args.video, args.per_shot, root) if args.mode == "scene"
                              else _one_round(args.video, args.interval, root))
            for name, measured in measured_round.items():
                if name not in best:
                    best[name] = measured
                best[name] = (min(best[name][0], measured[0]), min(best[name][1], measured[1]),
                              measured[2])
        if args.mode == "scene":
            print(f"  one pass vs two passes: {same_bytes(Path(temp) / 'r0' / 'one', Path(temp) / 'r0' / 'two')}")
    wall_ref, cpu_ref, _ = best["ffmpeg CLI"]
    print(f"  {'':<22} {'wall':>7} {'frames/s':>9} {'ratio':>6}   {'cpu':>7} {'ratio':>6}   written/cuts")
    for name, (wall, cpu, count) in best.items():
        print(f"  {name:<22} {wall:6.2f}s {frames / wall:9.1f} {wall_ref / wall:6.2f}   "
              f"{cpu:6.2f}s {cpu_ref / cpu:6.2f}   {count}")
    print("  ratio = ffmpeg time / our time (>= 1: we are at least as fast); cpu = user+sys of all "
          "threads, steadier than wall time on a loaded machine")
    if "ours: full ingest" not in best:
        print("  full ingest: lora_foundry.stages.ingest.ingest_video not available")


if __name__ == "__main__":
    main()
