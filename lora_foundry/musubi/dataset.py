"""Write clips (and, when asked, images) as a musubi-tuner dataset it reads as it is.

Layout::

    <name>/videos/shot0003_00.mp4 + shot0003_00.txt    the clips and their captions
    <name>/images/00000.jpg + 00000.txt                 images mixed in (optional; see _write_image)
    <name>/cache/videos  <name>/cache/images            one cache folder per dataset (musubi requires it)
    <name>/dataset.toml                                 --dataset_config of every musubi script
    <name>/diffusion_pipe_dataset.toml                  the same files for diffusion-pipe
    <name>/lora_foundry_video_dataset.json              what was written, from what (``read_video_dataset``)

musubi-tuner reads a video frame by frame without resampling (``docs/dataset_config.md``), so the
clips are already at the model's rate and lengths; ``frame_extraction = "full"`` with
``max_frames`` at the longest clip gives exactly one training item per clip at its own N*4+1
length (``head`` with several ``target_frames`` would repeat the longer clips). ``source_fps`` is
the clips' own rate: nothing is skipped. diffusion-pipe reads the same folders (media + same-name
``.txt``); only its TOML differs (its ``examples/dataset.toml``): ``[[directory]]`` entries, and
``frame_buckets`` listing every clip length, since it puts a video in the longest bucket not longer
than the video. Assembled in a staging folder and renamed into place.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tomli_w

from .. import bounded, names
from ..kohya.dataset_versions import after_race, version_folder
from ..kohya.staging import write_staged
from ..media import images
from ..paths import caption_line, safe_name
from ..progress import Progress, ensure_progress
from ..workspace import Handle, Item, Workspace

REPORT_NAME = "lora_foundry_video_dataset.json"
TOML_NAME = "dataset.toml"
DIFFUSION_PIPE_TOML = "diffusion_pipe_dataset.toml"


@dataclass(frozen=True)
class VideoDatasetSpec:
    """What to write; the trigger and class fill captions a clip lacks (``"trigger class"``)."""

    name: str
    trigger: str
    class_word: str = ""
    video_repeats: int = 1
    image_repeats: int = 1
    batch_size: int = 1


@dataclass(frozen=True)
class VideoDataset:
    path: Path
    toml_path: Path
    clips: int
    images: int
    fps: float
    frame_counts: tuple[int, ...]


def _clip_items(ws: Workspace, clips: Handle) -> list[Item]:
    items = [item for item in ws.items(clips) if item.kind == names.KIND_CLIP]
    if not items:
        raise ValueError(f"{clips} holds no clips: connect the output of LF Cut Clips")
    rates = {item.meta[names.META_CLIP]["fps"] for item in items}
    if len(rates) != 1:
        raise ValueError(f"clips at several frame rates {sorted(rates)}: one dataset needs one model's rate")
    return items


def _caption(captions: dict[int, Any], item: Item, spec: VideoDatasetSpec) -> str:
    text = captions.get(item.id) or " ".join(part for part in (spec.trigger, spec.class_word) if part)
    return caption_line(str(text))


def dataset_config(root: Path, clip_items: Sequence[Item], size: tuple[int, int], spec: VideoDatasetSpec,
                   with_images: bool) -> dict[str, Any]:
    """The TOML as a dict (paths absolute: musubi's scripts run from their own folder)."""
    clip = clip_items[0].meta[names.META_CLIP]
    counts = sorted({int(item.meta[names.META_CLIP]["frames"]) for item in clip_items})
    config: dict[str, Any] = {
        "general": {"resolution": list(size), "caption_extension": ".txt", "batch_size": spec.batch_size,
                    "enable_bucket": True, "bucket_no_upscale": False},
        "datasets": [{"video_directory": str(root / "videos"), "cache_directory": str(root / "cache" / "videos"),
                      "target_frames": counts, "frame_extraction": "full", "max_frames": counts[-1],
                      "source_fps": float(clip["fps"]), "num_repeats": spec.video_repeats}],
    }
    if with_images:
        config["datasets"].append({"image_directory": str(root / "images"),
                                   "cache_directory": str(root / "cache" / "images"),
                                   "num_repeats": spec.image_repeats})
    return config


def diffusion_pipe_config(root: Path, config: dict[str, Any], spec: VideoDatasetSpec) -> dict[str, Any]:
    """diffusion-pipe's dataset TOML for the same folders: the bucket as its one size, one frame
    bucket per clip length (1 is images)."""
    size = config["general"]["resolution"]
    video = config["datasets"][0]
    directories = [{"path": str(root / "videos"), "num_repeats": spec.video_repeats}]
    if len(config["datasets"]) > 1:
        directories.append({"path": str(root / "images"), "num_repeats": spec.image_repeats})
    return {"resolutions": [size], "enable_ar_bucket": True, "ar_buckets": [size],
            "frame_buckets": [1, *video["target_frames"]], "directory": directories}


def _write_image(source: Path, stem: Path) -> Path:
    """A mixed-in image as musubi-tuner will read it, the same picture the kohya dataset writer
    trains on: a file musubi decodes as it is is copied byte for byte (no re-encoding); one with
    transparency is flattened on white as the kohya writer does (musubi's ``convert("RGB")`` would
    drop the alpha and show whatever colour hides under it); anything else is written as PNG."""
    suffix = source.suffix.lower()
    if suffix in images.MUSUBI_IMAGE_SUFFIXES and images.decodes_plainly(source):
        shutil.copyfile(source, stem.with_suffix(suffix))
        return stem.with_suffix(suffix)
    return images.save_image(images.flatten(images.load_image(source)), stem.with_suffix(".png"))


def _identity(clips: Handle, image_frames: Handle | None, spec: VideoDatasetSpec) -> dict[str, Any]:
    """What makes two writes the same dataset: the clips and images (their stage keys follow every
    setting that made them, captions included) and the spec."""
    def source(handle: Handle | None) -> dict[str, str] | None:
        return None if handle is None else {"workspace": handle.workspace, "stage_key": handle.stage_key}

    return {"clips": source(clips), "images": source(image_frames), "spec": asdict(spec)}


def write_video_dataset(ws: Workspace, clips: Handle, spec: VideoDatasetSpec, root: Path,
                        image_frames: Handle | None = None, progress: Progress | None = None) -> VideoDataset:
    """Write ``clips`` (and ``image_frames`` as a mixed-in image dataset) under ``root``, versioned
    as kohya's datasets are (``kohya.dataset_versions``, ``new_version``): the same clips and spec
    again return the dataset already written (and the latents musubi cached in it), anything else
    is written as the next ``_vN``, never over an existing one."""
    name = safe_name(spec.name, "dataset name")
    clip_items = _clip_items(ws, clips)
    image_items = ws.items(image_frames) if image_frames is not None else []
    captions = ws.annotations(clips, names.CAPTION)
    image_captions = ws.annotations(image_frames, names.CAPTION) if image_frames is not None else {}
    identity = _identity(clips, image_frames, spec)
    target = version_folder(root, name, identity, "new_version", REPORT_NAME)
    if target.is_dir():
        return read_video_dataset(target)
    files = _DatasetFiles(ws, spec, clip_items, image_items, captions, image_captions, identity)
    written, published = write_staged(root, target, lambda staging: files.write(staging, target, progress))
    if not published:  # another writer of the same name finished first: as if it had run before us
        return read_video_dataset(after_race(root, target, identity, "new_version", REPORT_NAME))
    return written


@dataclass(frozen=True)
class _DatasetFiles:
    """What one video dataset holds, written into a staging folder that becomes ``target``."""

    ws: Workspace
    spec: VideoDatasetSpec
    clip_items: list[Item]
    image_items: list[Item]
    captions: dict
    image_captions: dict
    identity: dict[str, Any]

    def write(self, staging: Path, target: Path, progress: Progress | None) -> VideoDataset:
        self._media(staging, ensure_progress(progress))
        clip_items, spec = self.clip_items, self.spec
        size = (clip_items[0].width, clip_items[0].height)
        config = dataset_config(target, clip_items, size, spec, bool(self.image_items))
        (staging / TOML_NAME).write_text(tomli_w.dumps(config), encoding="utf-8")
        (staging / DIFFUSION_PIPE_TOML).write_text(tomli_w.dumps(diffusion_pipe_config(target, config, spec)),
                                                   encoding="utf-8")
        written = VideoDataset(target, target / TOML_NAME, len(clip_items), len(self.image_items),
                               float(clip_items[0].meta[names.META_CLIP]["fps"]),
                               tuple(config["datasets"][0]["target_frames"]))
        record = {"identity": self.identity, "spec": asdict(spec), "clips": [item.relpath for item in clip_items],
                  "images": len(self.image_items), "fps": written.fps, "frame_counts": list(written.frame_counts),
                  "workspace": str(self.ws.root)}
        (staging / REPORT_NAME).write_text(json.dumps(record, indent=1), encoding="utf-8")
        return written

    def _media(self, staging: Path, report: Progress) -> None:
        """The clips and images with their captions, one progress step each."""
        clips, pictures = self.clip_items, self.image_items
        total = len(clips) + len(pictures)
        for folder in ("videos", "images" if pictures else "", "cache/videos", "cache/images" if pictures else ""):
            if folder:
                (staging / folder).mkdir(parents=True, exist_ok=True)
        for done, item in enumerate(clips, start=1):
            stem = Path(item.relpath).stem
            shutil.copyfile(item.path, staging / "videos" / f"{stem}.mp4")
            (staging / "videos" / f"{stem}.txt").write_text(_caption(self.captions, item, self.spec) + "\n",
                                                            encoding="utf-8")
            report.update(done, total)
        for position, item in enumerate(pictures):
            _write_image(item.path, staging / "images" / f"{position:05d}")
            (staging / "images" / f"{position:05d}.txt").write_text(
                _caption(self.image_captions, item, self.spec) + "\n", encoding="utf-8")
            report.update(len(clips) + position + 1, total)


def read_video_dataset(folder: Path) -> VideoDataset:
    """A folder ``write_video_dataset`` wrote, as the writer returned it, from its record
    (``train-video``; musubi-tuner and the launcher read ``dataset.toml`` themselves). The folder lies
    in the output folder, which clients can write to, so the record is read bounded and a refusal
    names the dataset and the file, never a server path."""
    where = f"video dataset {folder.name}/{REPORT_NAME}"
    record = bounded.parse_json_file(folder / REPORT_NAME, where)
    record = record if isinstance(record, dict) else {}
    clips, fps, counts, image_count = (record.get(key) for key in ("clips", "fps", "frame_counts", "images"))
    if not isinstance(clips, list) or not clips:
        raise ValueError(f"{where} lists no clips; write the dataset again (video-dataset or LF Write Video Dataset)")
    if (not isinstance(fps, int | float) or not fps > 0 or not isinstance(counts, list)
            or not all(isinstance(count, int) for count in counts) or not isinstance(image_count, int)):
        raise ValueError(f"{where} lacks the clips' fps, frame counts or image count; write the dataset again")
    return VideoDataset(folder, folder / TOML_NAME, len(clips), image_count, float(fps), tuple(counts))
