"""Peak memory of the driver (the one process that commits) at 100 and 1,000 units.

A workspace gets N small real frames (a long real shot at 64 px, see long_shot_video); then, in a fresh process
per N, the pixel-embedding stage runs with batch size 1 (N units) on two worker processes
(``scale.local.LocalRunner``): workers embed and write, the driver commits every unit. Prints
the driver's peak RSS (its own, not its workers') before the stage and at its end, per N.

    python bench/driver_memory.py [--units 100 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
def long_shot_video(folder: Path) -> Path:
    """A long single shot with motion (1,394 frames at 10 fps) cut from the bundled clip into ``folder``."""
    sys.path.insert(0, str(REPO / "tests"))
    return importlib.import_module("media_clips").long_shot(folder)



def make_frames(root: Path, count: int, video: Path) -> None:
    """A workspace with ``count`` frame items (tiny JPEGs of real footage)."""
    from lora_foundry import names
    from lora_foundry.media.video import iter_frames
    from lora_foundry.workspace import NewItem, Workspace

    with Workspace.open(root) as ws, ws.stage("bench_frames", 1, {"count": count}) as st:
        for position, frame in enumerate(iter_frames(video, long_side=64)):
            if position == count:
                break
            rel = st.write_image(frame.rgb, f"{position:06d}.jpg")
            st.emit(str(position), position, [NewItem(kind=names.KIND_FRAME, relpath=rel, width=frame.rgb.shape[1],
                                                      height=frame.rgb.shape[0], frame_index=frame.index)])
    (root / "handle.json").write_text(json.dumps({"key": st.key}))


def measure(root: Path, workers: int) -> dict:
    """In this (fresh) process: embed every frame as its own unit; peak RSS before and after."""
    from lora_foundry.scale.local import LocalRunner
    from lora_foundry.stages.clusters.embed_stage import embed_stage
    from lora_foundry.workspace import Workspace

    with Workspace.open(root) as ws:
        handle = ws.handle(json.loads((root / "handle.json").read_text())["key"])
        items = ws.count(handle)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        embedded = embed_stage(ws, handle, method="pixels", batch_size=1, runner=LocalRunner(workers))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        units = ws.connection.execute("SELECT COUNT(*) FROM stage_units WHERE stage_key=?",
                                      (embedded.stage_key,)).fetchone()[0]
    return {"items": items, "units": units, "before_mb": before / 1024, "after_mb": after / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers)))
        return
    with tempfile.TemporaryDirectory(prefix="lf_bench_driver_") as temp:
        video = long_shot_video(Path(temp) / "media")
        for count in args.units:
            root = Path(temp) / f"ws{count}"
            make_frames(root, count, video)
            out = subprocess.run([sys.executable, __file__, "--measure", str(root), "--workers", str(args.workers)],
                                 capture_output=True, text=True, check=True)
            facts = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {facts['units']:5d} units: driver peak RSS {facts['before_mb']:6.1f} MB before the stage, "
                  f"{facts['after_mb']:6.1f} MB at its end (+{facts['after_mb'] - facts['before_mb']:.1f} MB)")


if __name__ == "__main__":
    main()
