"""Peak memory of ingesting 500 vs 5,000 1080p frames: it must stay flat (goal ≤ 1.5 GB at 5,000).

Frames go to disk one by one, so memory should not grow with the number of frames. We make a
synthetic 1080p H.264 video with the ffmpeg command line (testsrc2: moving, never-repeating
content), ingest every frame through the CLI in a child process for each count, and print the
child's peak RSS and the ratio.

    python bench/memory.py [--frames 500 5000] [--keep]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_video(path: Path, frames: int) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25",
         "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )


def peak_rss_of_ingest(video: Path, out: Path, frames: int) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one ingest of ``frames`` frames in a fresh child process."""
    command = [sys.executable, "-c",
               "import resource, sys; from lora_foundry.cli import main; code = main(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)",
               "ingest", str(video), "--out", str(out), "--workspace", f"w{frames}", "--mode", "all",
               "--max-frames", str(frames)]
    started = time.monotonic()
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    elapsed = time.monotonic() - started
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return peak_kb / 1024, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs=2, default=[500, 5000])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        print("ffmpeg command line not found: install ffmpeg to run this benchmark")
        return 2
    small, large = args.frames
    tmp = Path(tempfile.mkdtemp(prefix="lf-bench-memory-"))
    try:
        video = tmp / "synthetic_1080p.mp4"
        make_video(video, large)
        results = {count: peak_rss_of_ingest(video, tmp / "out", count) for count in (small, large)}
        for count, (mb, seconds) in results.items():
            print(f"{count:6d} frames of 1080p: peak RSS {mb:7.1f} MB, {seconds:6.1f} s ({count / seconds:5.1f} fps)")
        ratio = results[large][0] / results[small][0]
        print(f"peak RSS ratio {large}/{small} frames: {ratio:.2f} (flat = 1.0); "
              f"at {large}: {results[large][0] / 1024:.2f} GB (goal <= 1.5 GB)")
        print(f"ru_maxrss of this process's children: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
