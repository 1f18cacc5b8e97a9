"""Write a workspace selection as a kohya dataset: ``N_trigger class/`` images + ``.txt`` captions,
a ``dataset.toml`` sd-scripts accepts, and a JSON report.

The dataset is assembled in a temporary folder beside its final place and renamed into place in
one step, so a crash or cancel never leaves half a dataset under the real name, and an existing
dataset is never overwritten: the same source and settings are a cache hit (the existing dataset is
returned), anything else is an error unless the user asks for a new version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ..media import images
from ..paths import confined, safe_name
from ..progress import Progress, ensure_progress
from ..workspace import Handle, Item, Workspace

DATASETS_DIR = ("lora_foundry", "datasets")
REPORT_NAME = "lora_foundry_dataset.json"
IF_EXISTS = ("error", "new_version", "reuse")
IMAGE_FORMATS = ("png", "jpg", "webp")


class DatasetExistsError(FileExistsError):
    """A dataset of that name exists and was made from something else."""


@dataclass(frozen=True)
class DatasetSpec:
    """What to write; ``trigger``/``name`` are user-typed and checked with ``safe_name``."""

    name: str
    trigger: str
    class_word: str = ""
    repeats: int = 10
    caption_template: str = "{trigger}, {class_word}"
    image_format: str = "png"
    resolution: int = 512
    if_exists: str = "error"


@dataclass(frozen=True)
class Dataset:
    """A written dataset (ComfyUI type LF_DATASET)."""

    path: Path
    toml_path: Path
    report_path: Path
    subset_dir: Path
    image_count: int
    trigger: str


def datasets_root(output_root: Path) -> Path:
    return confined(output_root, *DATASETS_DIR)


def write_kohya_dataset(ws: Workspace, handle: Handle, spec: DatasetSpec, root: Path,
                        progress: Progress | None = None) -> Dataset:
    """Write the items of ``handle`` as a dataset under ``root`` (see the module docstring)."""
    _validate(spec)
    name = safe_name(spec.name, "dataset name")
    trigger = safe_name(spec.trigger, "trigger word")
    items = ws.items(handle)
    if not items:
        raise ValueError(f"nothing to write: {handle} has no items (were they all filtered out?)")
    identity = {"stage_key": handle.stage_key, "workspace": handle.workspace, "spec": asdict(spec)}
    target = _target_folder(root, name, identity, spec.if_exists)
    if target.is_dir():
        return _load_existing(target)
    captions = ws.annotations(handle, "caption")
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=root))
    try:
        dataset = _write_into(staging, target, items, captions, spec, trigger, identity, progress)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dataset


def _validate(spec: DatasetSpec) -> None:
    if spec.if_exists not in IF_EXISTS:
        raise ValueError(f"if_exists must be one of {', '.join(IF_EXISTS)}, not {spec.if_exists!r}")
    if spec.image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format {spec.image_format!r} is not one of {', '.join(IMAGE_FORMATS)}")
    if not 1 <= spec.repeats <= 1000:
        raise ValueError(f"repeats must be between 1 and 1000, not {spec.repeats}")
    if spec.class_word:
        safe_name(spec.class_word, "class word")


def _target_folder(root: Path, name: str, identity: dict[str, Any], if_exists: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for version in range(1, 1000):
        candidate = confined(root, name if version == 1 else f"{name}_v{version}")
        if not candidate.exists():
            return candidate
        if _identity_of(candidate) == identity:
            return candidate
        if if_exists == "error":
            raise DatasetExistsError(
                f"dataset folder {candidate} already exists and was made from other frames or settings; "
                "choose another name or set if_exists to new_version"
            )
        if if_exists == "reuse":
            return candidate
    raise DatasetExistsError(f"too many versions of dataset {name} in {root}")


def _identity_of(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / REPORT_NAME).read_text("utf-8")).get("identity")
    except (OSError, ValueError):
        return None


def _load_existing(folder: Path) -> Dataset:
    report = json.loads((folder / REPORT_NAME).read_text("utf-8"))
    return Dataset(path=folder, toml_path=folder / "dataset.toml", report_path=folder / REPORT_NAME,
                   subset_dir=folder / report["subset"], image_count=report["image_count"],
                   trigger=report["trigger"])


def _write_into(staging: Path, target: Path, items: list[Item], captions: dict[int, str], spec: DatasetSpec,
                trigger: str, identity: dict[str, Any], progress: Progress | None) -> Dataset:
    report_progress = ensure_progress(progress)
    subset = f"{spec.repeats}_{trigger}" + (f" {spec.class_word}" if spec.class_word else "")
    subset_dir = staging / subset
    subset_dir.mkdir()
    written: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        report_progress.update(position, len(items))
        stem = f"{position:05d}"
        pixels = images.load_image(item.path)
        images.save_image(pixels, subset_dir / f"{stem}.{spec.image_format}")
        caption = captions.get(item.id) or _template_caption(spec, trigger)
        (subset_dir / f"{stem}.txt").write_text(caption + "\n", encoding="utf-8")
        written.append({"file": f"{stem}.{spec.image_format}", "item": item.id, "source": item.source,
                        "frame_index": item.frame_index, "shot": item.shot, "caption": caption})
    report_progress.update(len(items), len(items))
    has_alpha = any(_has_alpha(item) for item in items)
    toml_text = dataset_toml(target / subset, spec, trigger, alpha_mask=has_alpha)
    (staging / "dataset.toml").write_text(toml_text, encoding="utf-8")
    report = {"identity": identity, "trigger": trigger, "subset": subset, "image_count": len(written),
              "repeats": spec.repeats, "alpha_mask": has_alpha, "written_at": time.time(), "images": written}
    (staging / REPORT_NAME).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return Dataset(path=target, toml_path=target / "dataset.toml", report_path=target / REPORT_NAME,
                   subset_dir=target / subset, image_count=len(written), trigger=trigger)


def _template_caption(spec: DatasetSpec, trigger: str) -> str:
    caption = spec.caption_template.format(trigger=trigger, class_word=spec.class_word)
    return ", ".join(part.strip() for part in caption.split(",") if part.strip())


def _has_alpha(item: Item) -> bool:
    return item.kind in {"cutout"} or item.path.suffix.lower() == ".png" and item.meta.get("alpha", False)


def dataset_toml(image_dir: Path, spec: DatasetSpec, trigger: str, alpha_mask: bool = False) -> str:
    """The dataset config sd-scripts reads with ``--dataset_config`` (captions are ``.txt``)."""
    subset: dict[str, Any] = {
        "image_dir": str(image_dir),
        "num_repeats": spec.repeats,
        "class_tokens": f"{trigger} {spec.class_word}".strip(),
        "caption_extension": ".txt",
        "keep_tokens": 1,
    }
    if alpha_mask:
        subset["alpha_mask"] = True
    config = {
        "general": {"caption_extension": ".txt", "shuffle_caption": False, "keep_tokens": 1},
        "datasets": [{"resolution": spec.resolution, "batch_size": 1, "enable_bucket": True,
                      "subsets": [subset]}],
    }
    return tomli_w.dumps(config)
