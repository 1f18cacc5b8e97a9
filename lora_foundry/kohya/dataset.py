"""Write workspace selections as a kohya dataset every trainer reads as it is.

Layout (the kohya_ss GUI's, which the others read too)::

    <name>/img/10_sks woman/00000.png + 00000.txt    training subsets, one folder per concept
    <name>/reg/1_woman/00000.png + 00000.txt         regularisation (class) images, is_reg
    <name>/masks/10_sks woman/00000.png              mask images (mask mode "folder" only)
    <name>/dataset.toml                              sd-scripts --dataset_config
    <name>/lora_foundry_dataset.json                 what was written, from what
    <name>/contact_sheet.jpg                         written by the dataset report

Point sd-scripts at dataset.toml (or kohya_ss at img/ and reg/), OneTrainer concepts and
ai-toolkit's folder_path at a subset folder, ComfyUI's LoadImageTextSetFromFolder at img/.

The dataset is assembled in a temporary folder beside its final place and renamed into place in
one step, so a crash or cancel never leaves half a dataset under the real name, and an existing
dataset is never overwritten: the same sources and settings are a cache hit (the existing dataset
is returned), anything else is an error unless the user asks for a new version.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import names
from ..captions.stage import caption_info
from ..captions.template import check_caption_length, fill_template, template_fields
from ..choices import one_of
from ..media import images
from ..paths import confined, safe_name, single_line
from ..progress import Progress, ensure_progress
from ..workspace import Handle, Workspace
from . import dataset_versions as versions
from .buckets import BucketSpec
from .dataset_toml import check_masks_with_reg, dataset_config, dataset_toml_text
from .dataset_versions import IF_EXISTS, after_race, other_versions, version_folder
from .dataset_versions import DatasetExistsError as DatasetExistsError  # raised by write_kohya_dataset
from .staging import write_staged
from .subsets import (
    MASK_MODES,
    EarlierImage,
    SubsetPlan,
    WriteOptions,
    WrittenSubset,
    balanced_repeats,
    effective_mask_mode,
    folder_name,
    write_subsets,
)

DATASETS_DIR = ("lora_foundry", "datasets")
REPORT_NAME = "lora_foundry_dataset.json"
IMAGE_FORMATS = ("png", "jpg", "webp")
TEMPLATE_FIELDS = ("trigger", "class_word")  # the slots a caption_template may use


@dataclass(frozen=True)
class DatasetSpec:
    """What to write; ``trigger``/``name``/``class_word`` are user-typed and checked with ``safe_name``.

    ``repeats`` is the main subset's num_repeats; extra subsets with repeats 0 are balanced
    against it by image count. ``bucket`` resizes every image to its aspect bucket around
    ``resolution``² (``bucket_no_upscale`` keeps small images at their own scale).
    """

    name: str
    trigger: str
    class_word: str = ""
    repeats: int = 10
    caption_template: str = "{trigger}, {class_word}"
    image_format: str = "png"
    resolution: int = 512
    if_exists: str = "error"
    lora_type: str = "character"
    bucket: bool = True
    bucket_no_upscale: bool = True
    bucket_step: int = 64
    mask_mode: str = "auto"
    quality: int = 95
    shuffle_caption: bool | None = None
    workers: int = 1  # 2 threads measured no faster on the shared 2-core machine (bench/write.py)


@dataclass(frozen=True)
class SubsetSource:
    """Another concept (or regularisation images) to write into the same dataset."""

    handle: Handle
    trigger: str = ""
    class_word: str = ""
    repeats: int = 0
    is_reg: bool = False


@dataclass(frozen=True)
class Dataset:
    """A written dataset (ComfyUI type LF_DATASET)."""

    path: Path
    toml_path: Path
    report_path: Path
    subset_dir: Path
    image_count: int
    trigger: str
    subsets: tuple[str, ...] = ()
    lora_type: str = "character"
    image_root: Path | None = field(default=None, compare=False)


def datasets_root(output_root: Path) -> Path:
    return confined(output_root, *DATASETS_DIR)


def write_kohya_dataset(ws: Workspace, handle: Handle, spec: DatasetSpec, root: Path,
                        progress: Progress | None = None, extra: Sequence[SubsetSource] = ()) -> Dataset:
    """Write ``handle`` (plus ``extra`` subsets) as a dataset under ``root`` (see the module docstring)."""
    _validate(spec)
    name = safe_name(spec.name, "dataset name")
    sources = [SubsetSource(handle, spec.trigger, spec.class_word, spec.repeats), *extra]
    identity = {"subsets": [_source_identity(s) for s in sources], "spec": asdict(spec)}
    plans, keep_tokens, separator, style = _plan(ws, sources, spec)
    target = version_folder(root, name, identity, spec.if_exists, REPORT_NAME)
    if target.is_dir():
        return _load_existing(target)
    dataset, published = write_staged(root, target, lambda staging: _write_into(
        staging, target, plans, spec, identity, (keep_tokens, separator, style), progress))
    if not published:  # another writer of the same name finished first: as if it had run before us
        return _load_existing(after_race(root, target, identity, spec.if_exists, REPORT_NAME))
    return dataset


def _validate(spec: DatasetSpec) -> None:
    one_of(spec.if_exists, IF_EXISTS, "if_exists")
    one_of(spec.image_format, IMAGE_FORMATS, "image format")
    if not 1 <= spec.repeats <= 1000:
        raise ValueError(f"repeats must be between 1 and 1000, not {spec.repeats}")
    one_of(spec.mask_mode, MASK_MODES, "mask mode")
    single_line(spec.trigger, "trigger")
    if spec.class_word:
        safe_name(single_line(spec.class_word, "class_word"), "class word")
    _check_template(spec.caption_template)
    if spec.bucket:
        _bucket_spec(spec)


def _bucket_spec(spec: DatasetSpec) -> BucketSpec:
    step = spec.bucket_step
    min_side = max(step, min(256, spec.resolution // 2 // step * step))
    return BucketSpec(resolution=spec.resolution, min_side=min_side,
                      max_side=spec.resolution * 2, step=step, no_upscale=spec.bucket_no_upscale)


def _source_identity(source: SubsetSource) -> dict[str, Any]:
    return {"workspace": source.handle.workspace, "stage_key": source.handle.stage_key,
            "trigger": source.trigger, "class_word": source.class_word, "repeats": source.repeats,
            "is_reg": source.is_reg}


def _read_source(ws: Workspace, source: SubsetSource) -> tuple[list[Any], dict[int, str], dict[str, Any]]:
    """Items, captions and caption settings of one source (opening its workspace if it is another)."""
    if Path(source.handle.workspace).resolve() == ws.root:
        return ws.items(source.handle), ws.annotations(source.handle, names.CAPTION), caption_info(ws, source.handle)
    with Workspace.from_handle(source.handle) as other:
        return (other.items(source.handle), other.annotations(source.handle, names.CAPTION),
                caption_info(other, source.handle))


def _plan(ws: Workspace, sources: Sequence[SubsetSource], spec: DatasetSpec
          ) -> tuple[list[SubsetPlan], int, str | None, str | None]:
    """One ``SubsetPlan`` per source, repeats balanced; plus keep_tokens/separator from captions."""
    read = [_read_source(ws, s) for s in sources]
    for source, (items, _, _) in zip(sources, read, strict=True):
        if not items:
            raise ValueError(f"nothing to write: {source.handle} has no items (were they all filtered out?)")
    training = [i for i, s in enumerate(sources) if not s.is_reg]
    counts = [len(read[i][0]) for i in training]
    fixed = [sources[i].repeats if i > 0 else spec.repeats for i in training]
    repeats = dict(zip(training, balanced_repeats(counts, fixed), strict=True))
    plans, seen = [], set()
    for index, (source, (items, captions, _)) in enumerate(zip(sources, read, strict=True)):
        trigger = safe_name(source.trigger or spec.trigger, "trigger word")
        class_word = safe_name(source.class_word, "class word") if source.class_word.strip() else ""
        count = repeats.get(index, source.repeats or 1)
        folder = folder_name(count, class_word or trigger, "") if source.is_reg else folder_name(count, trigger, class_word)
        if (folder, source.is_reg) in seen:
            raise ValueError(f"two subsets would share the folder {folder!r}; give them different triggers")
        seen.add((folder, source.is_reg))
        fallback = class_word or trigger if source.is_reg else _template_caption(spec, trigger, class_word)
        plans.append(SubsetPlan(folder=folder, parent="reg" if source.is_reg else "img", trigger=trigger,
                                class_word=class_word, repeats=count, is_reg=source.is_reg,
                                sources=tuple(item.path for item in items),
                                captions=tuple(check_caption_length(captions.get(item.id) or fallback,
                                                                    f"caption of {item.relpath}") for item in items),
                                items=tuple(item.id for item in items)))
    info = read[0][2]
    keep_tokens = int(info.get(names.INFO_CAPTION_KEEP_TOKENS, 1))
    return plans, keep_tokens, info.get(names.INFO_CAPTION_SEPARATOR), info.get(names.INFO_CAPTION_STYLE)


def read_record(folder: Path) -> dict[str, Any]:
    """A kohya dataset's record (``REPORT_NAME``), read as every version's is (``dataset_versions``)."""
    return versions.read_record(folder, REPORT_NAME)


def _load_existing(folder: Path) -> Dataset:
    """The dataset a record describes, reused as it is. The record lies where clients can write: one
    that lacks a field or names a subset outside its folder is refused by name, never half read."""
    report = read_record(folder)
    try:
        subsets = tuple(str(s["path"]) for s in report.get("subsets", []))
        subset_dir = confined(folder, str(report["subset"]))
        return Dataset(path=folder, toml_path=folder / "dataset.toml", report_path=folder / REPORT_NAME,
                       subset_dir=subset_dir, image_count=int(report["image_count"]), trigger=str(report["trigger"]),
                       subsets=subsets, lora_type=str(report.get("lora_type", "character")), image_root=folder / "img")
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"dataset {folder.name}/{REPORT_NAME} is not a record this writer made; delete "
                         "that folder and write the dataset again") from error


def _write_into(staging: Path, target: Path, plans: list[SubsetPlan], spec: DatasetSpec,
                identity: dict[str, Any], caption_facts: tuple[int, str | None, str | None],
                progress: Progress | None) -> Dataset:
    keep_tokens, separator, style = caption_facts
    buckets = _bucket_spec(spec) if spec.bucket else None
    any_alpha = any(images.file_has_alpha(p) for plan in plans for p in plan.sources)
    mask_mode = effective_mask_mode(spec.mask_mode, spec.image_format, any_alpha)
    check_masks_with_reg(mask_mode, any(plan.is_reg for plan in plans))
    options = WriteOptions(spec.image_format, buckets, mask_mode, spec.quality, workers=spec.workers,
                           reuse=_earlier_images(target))
    written = write_subsets(staging, plans, options, ensure_progress(progress))
    shuffle = spec.shuffle_caption if spec.shuffle_caption is not None else style == "tags"
    config = dataset_config(target, written, spec.resolution, buckets, mask_mode, keep_tokens, separator, shuffle)
    (staging / "dataset.toml").write_text(dataset_toml_text(config), encoding="utf-8")
    record = _record(written, plans, spec, identity, mask_mode, keep_tokens)
    (staging / REPORT_NAME).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return Dataset(path=target, toml_path=target / "dataset.toml", report_path=target / REPORT_NAME,
                   subset_dir=target / written[0].relpath, image_count=record["image_count"],
                   trigger=plans[0].trigger, subsets=tuple(w.relpath for w in written),
                   lora_type=spec.lora_type, image_root=target / "img")


def _earlier_images(target: Path) -> dict[str, EarlierImage]:
    """Images the other versions of this dataset (``name``, ``name_v2``, ...) wrote, by ``image_key``."""
    found: dict[str, EarlierImage] = {}
    for folder in other_versions(target):
        try:
            found.update(_images_listed(folder))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # not a record this writer made: nothing of that version is reused
    return found


def _images_listed(folder: Path) -> dict[str, EarlierImage]:
    """The images an earlier version's record lists, by key, each a file inside that version (a
    record a client rewrote must not link files from elsewhere into the new dataset)."""
    listed: dict[str, EarlierImage] = {}
    for image in read_record(folder).get("images", []):
        path = confined(folder, str(image["file"]))
        if image.get("key") and path.is_file():
            listed[str(image["key"])] = EarlierImage(path, tuple(image["size"]), bool(image["alpha"]))
    return listed


def _record(written: list[WrittenSubset], plans: list[SubsetPlan], spec: DatasetSpec,
            identity: dict[str, Any], mask_mode: str, keep_tokens: int) -> dict[str, Any]:
    subsets, images = [], []
    for subset in written:
        plan = subset.plan
        subsets.append({"path": subset.relpath, "repeats": plan.repeats, "is_reg": plan.is_reg,
                        "images": len(subset.files), "trigger": plan.trigger, "class_word": plan.class_word,
                        "alpha": subset.has_alpha, "masks": f"masks/{plan.folder}" if subset.masks else None})
        for index, name in enumerate(subset.files):
            images.append({"file": f"{subset.relpath}/{name}", "item": plan.items[index],
                           "source": str(plan.sources[index]), "caption": plan.captions[index],
                           "size": list(subset.sizes[index]), "key": subset.keys[index],
                           "alpha": subset.alphas[index]})
    training = [w for w in written if not w.plan.is_reg]
    buckets = Counter(f"{w}x{h}" for s in training for (w, h) in s.sizes)
    return {"identity": identity, "trigger": plans[0].trigger, "subset": written[0].relpath,
            "image_count": sum(len(s.files) for s in training), "repeats": plans[0].repeats,
            "alpha_mask": mask_mode == "alpha" and any(s.has_alpha for s in training), "mask_mode": mask_mode,
            "lora_type": spec.lora_type, "image_format": spec.image_format, "keep_tokens": keep_tokens,
            "buckets": dict(buckets.most_common()), "subsets": subsets, "written_at": time.time(),
            "images": images}


def _check_template(template: str) -> None:
    """Refuse a caption_template that would write captions without the trigger, several lines, or
    anything but ``{trigger}``/``{class_word}`` slots (``captions/template.py``)."""
    single_line(template, "caption_template")
    if not template.strip():
        raise ValueError("caption_template is empty: every image without a built caption would get an empty "
                         "caption; use '{trigger}, {class_word}'")
    if "trigger" not in template_fields(template, TEMPLATE_FIELDS, "caption_template"):
        raise ValueError(f"caption_template {template!r} has no {{trigger}}: the trigger word must be in "
                         "every caption for the LoRA to bind to it")


def _template_caption(spec: DatasetSpec, trigger: str, class_word: str) -> str:
    caption = fill_template(spec.caption_template, {"trigger": trigger, "class_word": class_word}, "caption_template")
    return ", ".join(part.strip() for part in caption.split(",") if part.strip())
