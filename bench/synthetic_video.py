"""A 1080p clip with hard cuts, made by ffmpeg's own test sources, for the ingest benches.

The benches must read nothing beside the checkout (a fresh clone has nothing there) and must time work
that looks like a film: long-GOP H.264 at 1920x1080, 25 fps, shots of different content with
hard cuts between them, and film grain (``noise``) so the decoder has texture to work on rather
than flat test patterns. ``make_clip`` writes it once; the benches pass ``--video`` to reuse one.

    python bench/synthetic_video.py OUT.mp4 [--seconds 64]
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

SIZE = "1920x1080"
FPS = 25
SOURCES = (
    f"testsrc2=s={SIZE}:r={FPS}",
    f"gradients=s={SIZE}:r={FPS}:speed=0.02",
    f"cellauto=s={SIZE}:r={FPS}:rule=110",
    f"smptehdbars=s={SIZE}:r={FPS}",
    f"life=s={SIZE}:r={FPS}:mold=10:ratio=0.1:death_color=#203040:life_color=#e0c080",
    f"sierpinski=s={SIZE}:r={FPS}",
    f"mandelbrot=s=480x270:r={FPS},scale={SIZE}",
    f"colorchart=r={FPS},scale={SIZE},hue=H=0.5*t",
)
"""One shot per source, in turn; their content differs enough for a hard cut between each."""


def make_clip(out: Path, seconds: int = 64, shot_s: int = 8) -> Path:
    """Write ``out`` (H.264, yuv420p, keyframe every 10 s): ``seconds`` of shots ``shot_s`` long."""
    shots = max(1, seconds // shot_s)
    inputs: list[str] = []
    for number in range(shots):
        inputs += ["-f", "lavfi", "-t", str(shot_s), "-i", SOURCES[number % len(SOURCES)]]
    chains = "".join(f"[{n}:v]format=yuv420p,setsar=1[v{n}];" for n in range(shots))
    graph = chains + "".join(f"[v{n}]" for n in range(shots)) + f"concat=n={shots}:v=1:a=0[out]"
    command = ["ffmpeg", "-v", "error", "-nostdin", "-y", *inputs, "-filter_complex", graph, "-map", "[out]",
               "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-g", str(10 * FPS),
               "-pix_fmt", "yuv420p", str(out)]
    subprocess.run(command, check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=int, default=64)
    args = parser.parse_args()
    make_clip(args.out, args.seconds)


if __name__ == "__main__":
    main()
