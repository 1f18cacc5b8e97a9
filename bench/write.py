"""Dataset writing speed: our writer against plain Pillow saving the same images.

    /work/venv/bin/python bench/write.py [--count 1000] [--format jpg] [--resolution 1024]

Sources are real frames (the bundled lf_example_montage.mp4, scaled to 1080p as it decodes, reused
cyclically) saved as JPEG files in a workspace. Both sides do the same job per image: decode the
source, resize to the same aspect bucket around ``resolution``² (1920x1080 -> 1344x768 at 1024),
encode, write one caption file. Plain Pillow: ``ImageOps.fit(..., LANCZOS)`` and ``save`` in one
thread, as scripts commonly do. Ours: ``write_kohya_dataset`` (OpenCV INTER_AREA, OpenCV/Pillow
encoders, atomic writes, 1 and 2 worker threads). Prints images/s for each and the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # bench script: run from a checkout without installing

from lora_foundry.kohya import dataset  # noqa: E402
from lora_foundry.kohya.buckets import BucketSpec, choose_bucket  # noqa: E402
from lora_foundry.workspace import NewItem, Workspace  # noqa: E402

MEDIA = REPO / "lora_foundry" / "data" / "lf_example_montage.mp4"  # the bundled clip: six shots, 525 frames


def decode_frames(video: Path, count: int) -> list:
    import av

    frames = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for index, frame in enumerate(container.decode(stream)):
            if index % 10 == 0:
                frames.append(frame.to_ndarray(format="rgb24", width=1920, height=1080))
            if len(frames) >= count:
                break
    return frames


def make_sources(ws: Workspace, count: int, distinct: int = 40):
    from lora_foundry.media import images

    encoded = [images.encode_image(f, ".jpg", quality=95) for f in decode_frames(MEDIA, distinct)]
    with ws.stage("bench_sources", 1, {"count": count, "distinct": len(encoded)}) as st:
        for position, unit in st.pending_units([str(i) for i in range(count)]):
            data = encoded[position % len(encoded)]
            rel = st.write_file(f"{position:05d}.jpg", lambda h, d=data: h.write(d))
            st.emit(unit, position, [NewItem(kind="frame", relpath=rel, width=1920, height=1080,
                                             annotations={"caption": f"sks, frame {position}"})])
    return st.handle


def pillow_baseline(paths: list[Path], out: Path, resolution: int, image_format: str) -> float:
    from PIL import Image, ImageOps

    spec = BucketSpec(resolution=resolution)
    out.mkdir(parents=True)
    started = time.perf_counter()
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            bucket = choose_bucket(rgb.width, rgb.height, spec)
            fitted = ImageOps.fit(rgb, bucket, Image.Resampling.LANCZOS)
            options = {"quality": 95} if image_format in ("jpg", "webp") else {}
            fitted.save(out / f"{index:05d}.{image_format}", **options)
        (out / f"{index:05d}.txt").write_text(f"sks, frame {index}\n", encoding="utf-8")
    return time.perf_counter() - started


def ours(ws: Workspace, handle, root: Path, resolution: int, image_format: str, workers: int) -> float:
    spec = dataset.DatasetSpec(name=f"bench_{workers}", trigger="sks", resolution=resolution,
                               image_format=image_format, bucket_no_upscale=False, workers=workers)
    started = time.perf_counter()
    dataset.write_kohya_dataset(ws, handle, spec, root)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--format", default="jpg", choices=dataset.IMAGE_FORMATS)
    parser.add_argument("--resolution", type=int, default=1024)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lf_bench_write_"))
    try:
        ws = Workspace.open(work / "ws")
        handle = make_sources(ws, args.count)
        paths = [item.path for item in ws.items(handle)]
        pillow_s = pillow_baseline(paths, work / "pillow", args.resolution, args.format)
        one_s = ours(ws, handle, work / "datasets", args.resolution, args.format, workers=1)
        two_s = ours(ws, handle, work / "datasets", args.resolution, args.format, workers=2)
        n = args.count
        print(f"{n} images 1920x1080 -> bucket at {args.resolution}px, {args.format}")
        print(f"plain Pillow (LANCZOS, 1 thread): {n / pillow_s:7.1f} images/s ({pillow_s:.1f} s)")
        print(f"ours, 1 worker (INTER_AREA):      {n / one_s:7.1f} images/s ({one_s:.1f} s)  "
              f"ratio {pillow_s / one_s:.2f}x")
        print(f"ours, 2 workers:                  {n / two_s:7.1f} images/s ({two_s:.1f} s)  "
              f"ratio {pillow_s / two_s:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
