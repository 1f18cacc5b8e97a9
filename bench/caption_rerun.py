"""A re-run after changing one caption parameter, against the first full run (goal: <= 5 %).

The pipeline of ``lora-foundry demo`` (ingest in scene mode, filter, kohya dataset) runs once
into a fresh workspace, then again with another ``caption_template`` (if_exists=new_version):
ingest and filter are cache hits and the new dataset version hard-links the images the caption
edit does not change instead of encoding them again. Prints both times, the ratio, and checks the
images of both versions are the same files (same inode) while the captions differ.

    python bench/caption_rerun.py [--video PATH] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lora_foundry.kohya import dataset
from lora_foundry.stages.frames import filter_stage as filters
from lora_foundry.stages.frames import ingest_stage as ingest
from lora_foundry.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO / "lora_foundry" / "data" / "lf_example_montage.mp4"  # the bundled clip: six shots, 525 frames


def pipeline(root: Path, video: Path, template: str) -> tuple[float, dataset.Dataset]:
    """Seconds of one run of the demo pipeline, and the dataset it wrote."""
    started = time.perf_counter()
    with Workspace.open(root / "workspace") as ws:
        frames = ingest.ingest_video(ws, video, ingest.VideoIngestOptions(mode="scene", per_shot=3))
        kept, _ = filters.filter_frames(ws, frames, filters.FilterOptions())
        spec = dataset.DatasetSpec(name="bench", trigger="lfbench", caption_template=template,
                                   if_exists="new_version")
        written = dataset.write_kohya_dataset(ws, kept, spec, root / "datasets")
    return time.perf_counter() - started, written


def _images(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in (folder / "img").rglob("*.png")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--rounds", type=int, default=3, help="fresh runs; the median ratio is printed")
    args = parser.parse_args()
    ratios = []
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="lf_bench_caption_") as temp:
            first_s, first = pipeline(Path(temp), args.video, "{trigger}, {class_word}")
            again_s, again = pipeline(Path(temp), args.video, "{trigger}, a photo")
            old, new = _images(first.path), _images(again.path)
            linked = sum(1 for name in old if name in new and old[name].stat().st_ino == new[name].stat().st_ino)
            captions_differ = all(old[n].with_suffix(".txt").read_text() != new[n].with_suffix(".txt").read_text()
                                  for n in old)
            ratios.append(again_s / first_s)
            print(f"  round {number + 1}: first run {first_s:6.2f} s, caption re-run {again_s:5.2f} s, "
                  f"ratio {again_s / first_s:.3f}; {linked}/{len(old)} images linked, captions changed: "
                  f"{captions_differ}; {again.path.name} beside {first.path.name}")
    ratios.sort()
    print(f"caption re-run / first run: median {ratios[len(ratios) // 2]:.3f} (goal <= 0.05)")


if __name__ == "__main__":
    main()
