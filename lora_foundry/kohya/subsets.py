"""Subsets of a dataset: folder names, repeats balanced by image count, and writing the files.

Each subset is one kohya folder ``N_trigger class`` (N = repeats) of images with same-name ``.txt``
captions: training subsets under ``img/``, regularisation (class) subsets under ``reg/``, mask
images for masked loss under ``masks/<subset>/`` with the image's file stem. That is the kohya_ss
GUI layout (img/ reg/ log/ model/), and the folders are what OneTrainer concepts, ai-toolkit
``folder_path`` and ComfyUI's LoadImageTextSetFromFolder read as they are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..choices import one_of
from ..fileio import atomic_link, atomic_write_text
from ..media import images
from ..paths import caption_line
from ..progress import Progress
from .buckets import BucketSpec, choose_bucket, make_buckets, resize_to_bucket

MASK_MODES = ("auto", "alpha", "folder", "none")
ALPHA_FORMATS = ("png", "webp")
MAX_REPEATS = 1000


@dataclass(frozen=True)
class SubsetPlan:
    """One folder to write: where, which files, what captions, how often it repeats."""

    folder: str          # "10_sks woman"
    parent: str          # "img" or "reg"
    trigger: str
    class_word: str
    repeats: int
    is_reg: bool
    sources: tuple[Path, ...]
    captions: tuple[str, ...]
    items: tuple[int, ...] = ()


@dataclass
class WrittenSubset:
    """What was written for one subset (paths relative to the dataset root)."""

    plan: SubsetPlan
    files: list[str]
    sizes: list[tuple[int, int]]
    has_alpha: bool
    masks: list[str]
    keys: list[str] = field(default_factory=list)  # ``image_key`` of each image
    alphas: list[bool] = field(default_factory=list)

    @property
    def relpath(self) -> str:
        return f"{self.plan.parent}/{self.plan.folder}"


def folder_name(repeats: int, trigger: str, class_word: str) -> str:
    """kohya's ``N_trigger class`` folder name (class_tokens for images without a caption)."""
    return f"{repeats}_{trigger}" + (f" {class_word}" if class_word else "")


def balanced_repeats(counts: Sequence[int], repeats: Sequence[int]) -> list[int]:
    """Repeats per training subset so each weighs about as much per epoch as the first (main) one.

    ``repeats[0]`` is the main subset's; a subset with ``repeats[i] > 0`` keeps its own, one with
    0 gets ``main images x main repeats / its images`` (8 x 5 = 40: 2 images -> 20, 80 -> 1).
    """
    if not counts:
        return []
    target = counts[0] * max(1, repeats[0])
    return [own if own > 0 else max(1, min(MAX_REPEATS, round(target / max(count, 1))))
            for count, own in zip(counts, repeats, strict=True)]


def effective_mask_mode(mode: str, image_format: str, any_alpha: bool) -> str:
    """"alpha", "folder" or "none": auto keeps alpha in PNG/WebP and uses a mask folder for JPEG."""
    one_of(mode, MASK_MODES, "mask mode")
    if mode == "auto":
        if not any_alpha:
            return "none"
        return "alpha" if image_format in ALPHA_FORMATS else "folder"
    if mode == "alpha" and image_format not in ALPHA_FORMATS:
        raise ValueError(f"{image_format} has no alpha channel; use png or webp, or mask mode 'folder'")
    return mode


@dataclass(frozen=True)
class WriteOptions:
    """How images are written: format, bucketing, masks, encoder settings, worker threads."""

    image_format: str = "png"
    buckets: BucketSpec | None = None
    mask_mode: str = "none"
    quality: int = 95
    png_compress_level: int = 1
    workers: int = 1
    reuse: Mapping[str, EarlierImage] = field(default_factory=dict)  # by ``image_key``


class EarlierImage(NamedTuple):
    """An image an earlier version of the dataset wrote from the same source with the same settings."""

    path: Path
    size: tuple[int, int]
    alpha: bool


def image_key(source: Path, options: WriteOptions) -> str:
    """What a written image depends on: the source file as it is now and the encoding settings.

    Captions are not part of it, so a dataset version that only changes captions finds every
    image of the version before under the same key, and links it instead of encoding it again.
    """
    stat = Path(source).stat()
    payload = {"source": str(Path(source).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
               "format": options.image_format, "buckets": asdict(options.buckets) if options.buckets else None,
               "mask_mode": options.mask_mode, "quality": options.quality, "png": options.png_compress_level}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def _link_earlier(earlier: EarlierImage, target: Path) -> bool:
    """Hard-link (or, across file systems, copy) an earlier identical image into place, atomically."""
    try:
        atomic_link(earlier.path, target)
    except OSError:
        return False
    return True


def _split_alpha(pixels: np.ndarray, mask_mode: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The pixels to save and the mask to save beside them (folder mode)."""
    has_alpha = pixels.ndim == 3 and pixels.shape[2] == 4
    if mask_mode == "alpha":
        return pixels, None
    if mask_mode == "folder":
        mask = pixels[..., 3] if has_alpha else np.full(pixels.shape[:2], 255, np.uint8)
        return (pixels[..., :3] if has_alpha else pixels), mask
    return pixels, None


def _write_one(source: Path, target: Path, mask_target: Path | None, options: WriteOptions,
               bucket_list: list[tuple[int, int]] | None) -> tuple[tuple[int, int], bool, str]:
    key = image_key(source, options)
    earlier = options.reuse.get(key) if mask_target is None else None
    if earlier is not None and _link_earlier(earlier, target):
        return earlier.size, earlier.alpha, key
    pixels = images.load_image(source)
    has_alpha = pixels.ndim == 3 and pixels.shape[2] == 4
    if options.buckets is not None:
        bucket = choose_bucket(pixels.shape[1], pixels.shape[0], options.buckets, bucket_list)
        pixels = resize_to_bucket(pixels, bucket)
    if has_alpha and options.mask_mode == "none" and options.image_format in ALPHA_FORMATS:
        pixels = images.flatten(pixels)  # no masked loss wanted: a plain picture, transparency on white
    pixels, mask = _split_alpha(pixels, options.mask_mode)
    images.save_image(pixels, target, quality=options.quality, png_compress_level=options.png_compress_level)
    if mask_target is not None and mask is not None:
        images.save_image(mask, mask_target, png_compress_level=options.png_compress_level)
    return (pixels.shape[1], pixels.shape[0]), has_alpha, key


def write_subsets(
    staging: Path,
    plans: Sequence[SubsetPlan],
    options: WriteOptions,
    progress: Progress,
    stem: Callable[[int], str] = lambda i: f"{i:05d}",
) -> list[WrittenSubset]:
    """Write every subset's images, captions and masks under ``staging``; progress per image.

    Images are decoded, resized and encoded on ``options.workers`` threads (OpenCV and Pillow
    release the GIL while they work); results are collected in order so progress and cancel
    behave as in a plain loop. An exception (cancel included) propagates after pending work is
    dropped; the caller deletes the staging folder.
    """
    bucket_list = make_buckets(options.buckets) if options.buckets else None
    total = sum(len(p.sources) for p in plans)
    done = 0
    written: list[WrittenSubset] = []
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        for plan in plans:
            folder = staging / plan.parent / plan.folder
            folder.mkdir(parents=True)
            mask_dir = staging / "masks" / plan.folder if options.mask_mode == "folder" and not plan.is_reg else None
            if mask_dir is not None:
                mask_dir.mkdir(parents=True)
            files = [f"{stem(i)}.{options.image_format}" for i in range(len(plan.sources))]
            futures = [pool.submit(_write_one, src, folder / name,
                                   mask_dir / f"{Path(name).stem}.png" if mask_dir else None, options, bucket_list)
                       for src, name in zip(plan.sources, files, strict=True)]
            results: list[Any] = []
            try:
                for index, future in enumerate(futures):
                    results.append(future.result())
                    atomic_write_text(folder / f"{Path(files[index]).stem}.txt",
                                      caption_line(plan.captions[index]) + "\n")
                    done += 1
                    progress.update(done, total)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            masks = [f"masks/{plan.folder}/{Path(n).stem}.png" for n in files] if mask_dir else []
            written.append(WrittenSubset(plan, files, [r[0] for r in results], any(r[1] for r in results), masks,
                                         [r[2] for r in results], [r[1] for r in results]))
    return written
