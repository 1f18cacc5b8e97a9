"""Checks that stop a run before any model loads, for failures sd-scripts only finds after minutes.

Each check reads what sd-scripts will read (its venv's installed packages, the tokenizer files
``from_pretrained`` opens, the dataset's image sizes) and names the fix:

- LyCORIS 4.x on SD1.5/SD2: it targets both the ``TimestepEmbedding`` class and the
  ``time_embedding.linear_1`` name, which sd-scripts' SD1 UNet has both of, so network creation
  stops with "duplicated lora name". 3.4.0 (installed with ``--no-deps``) trains LoHa/LoKr/LoCon.
- Tokenizers: sd-scripts runs ``<Tokenizer>.from_pretrained(<cache>/<model id with _>)`` when that
  folder exists (``library/strategy_base.py``), so an empty folder passes a folder check and fails
  later (T5: ``TypeError: not a string``). CLIP needs ``vocab.json`` + ``merges.txt``; T5's fast
  tokenizer needs ``tokenizer.json`` or ``spiece.model``. SD2 reads
  ``<cache>/stabilityai_stable-diffusion-2/`` itself (the ``tokenizer`` subfolder is only used
  when downloading).
- Cached text-encoder outputs (Flux/SD3 presets) forbid ``shuffle_caption`` and caption dropout.
- Bucketing arithmetic (``sdscripts_buckets``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .operator_config import TrainerInstall
from .sdscripts_buckets import BucketRefused, BucketSettings, sdscripts_bucket, smallest_working_resolution

LYCORIS_PIN = "3.4.0"
LYCORIS_BROKEN_FROM = (4,)
LYCORIS_SD1_ARCHITECTURES = ("sd15", "sd2")
CLIP_FILES = (("vocab.json",), ("merges.txt",))
T5_FILES = (("tokenizer.json", "spiece.model"),)
TOKENIZER_FILES: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "openai/clip-vit-large-patch14": CLIP_FILES,
    "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k": CLIP_FILES,
    "stabilityai/stable-diffusion-2": CLIP_FILES,
    "google/t5-v1_1-xxl": T5_FILES,
}
CACHED_TE_FORBIDS = ("caption_dropout_rate", "token_warmup_step", "caption_tag_dropout_rate")


class PreflightError(ValueError):
    """Something that would make the run fail or lie, found before launching it."""


def lycoris_install_command(python: Path) -> str:
    return f"{python} -m pip install --no-deps lycoris-lora=={LYCORIS_PIN}"


def installed_version(install: TrainerInstall, distribution: str) -> str | None:
    """The version of ``distribution`` in sd-scripts' venv, read from its ``*.dist-info`` (no import)."""
    prefix = install.python.parent.parent
    wanted = re.sub(r"[-_.]+", "_", distribution).lower()
    for site in [*prefix.glob("lib/python*/site-packages"), *prefix.glob("Lib/site-packages")]:
        for info in site.glob("*.dist-info"):
            name, _, version = info.name[: -len(".dist-info")].rpartition("-")
            if re.sub(r"[-_.]+", "_", name).lower() == wanted:
                return version
    return None


def lycoris_breaks_sd1(version: str) -> bool:
    """Whether this lycoris-lora version fails on sd-scripts' SD1.5/SD2 UNet (4.0 and later)."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2]) >= LYCORIS_BROKEN_FROM


def check_lycoris(install: TrainerInstall, architecture: str, variant: str) -> str:
    """The LyCORIS version that will run ``variant``; refuses a missing or known-broken one."""
    version = installed_version(install, "lycoris-lora")
    fix = lycoris_install_command(install.python)
    if version is None:
        raise PreflightError(f"{variant} needs LyCORIS in sd-scripts' environment ({install.python}): {fix}")
    if architecture in LYCORIS_SD1_ARCHITECTURES and lycoris_breaks_sd1(version):
        raise PreflightError(
            f"lycoris-lora {version} cannot train {variant} on {architecture} with sd-scripts: LyCORIS 4+ wraps the "
            "UNet's time embedding twice and stops with 'duplicated lora name: lora_unet_time_embedding_linear_1'. "
            f"Install the version that works: {fix}")
    return version


def tokenizer_problems(cache: Path, model_id: str) -> list[str]:
    """What is wrong with ``cache``'s copy of ``model_id`` (empty list = ready)."""
    folder = cache / model_id.replace("/", "_")
    if not folder.is_dir():
        return [f"{folder} is missing"]
    problems = []
    for choices in TOKENIZER_FILES.get(model_id, ()):
        present = [folder / name for name in choices if (folder / name).is_file() and (folder / name).stat().st_size]
        if not present:
            problems.append(f"{folder} has no {' or '.join(choices)}")
        elif present[0].name == "vocab.json" and not _is_json_object(present[0]):
            problems.append(f"{present[0]} is not a JSON vocabulary")
    return problems


def _is_json_object(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    except (ValueError, OSError):
        return False


def resolve_cached_text_conflicts(data: dict[str, Any]) -> list[str]:
    """With cached text-encoder outputs: turn ``shuffle_caption`` off (warned), refuse caption dropout.

    ``data`` is the dataset TOML as a dict; it is changed in place. Returns the warnings.
    """
    tables = [("general", data.get("general", {}))]
    for i, dataset in enumerate(data.get("datasets", [])):
        tables.append((f"datasets[{i}]", dataset))
        tables += [(f"datasets[{i}].subsets[{j}]", s) for j, s in enumerate(dataset.get("subsets", []))]
    warnings = []
    for where, table in tables:
        if table.get("shuffle_caption"):
            table["shuffle_caption"] = False
            warnings.append(f"shuffle_caption turned off in {where}: this architecture caches text-encoder outputs, "
                            "which sd-scripts cannot combine with shuffled captions (captions train in written order)")
        bad = [key for key in CACHED_TE_FORBIDS if table.get(key)]
        if bad:
            raise PreflightError(
                f"{', '.join(bad)} in {where} of the dataset config cannot be used with cached text-encoder outputs "
                "(sd-scripts refuses it); remove it, or set cache_text_encoder_outputs = false in extra_options")
    return warnings


def check_buckets(dataset: Mapping[str, Any], sizes: Iterable[tuple[int, int]]) -> None:
    """Refuse a resolution sd-scripts' bucketing cannot place every image size at."""
    resolution = dataset.get("resolution")
    if not dataset.get("enable_bucket") or not isinstance(resolution, int):
        return
    settings = BucketSettings(resolution, int(dataset.get("min_bucket_reso", 256)),
                              int(dataset.get("max_bucket_reso", 1024)), int(dataset.get("bucket_reso_steps", 64)),
                              bool(dataset.get("bucket_no_upscale", False)))
    distinct = set(sizes)
    for width, height in sorted(distinct):
        try:
            sdscripts_bucket(width, height, settings)
        except BucketRefused as exc:
            working = smallest_working_resolution(distinct, settings)
            hint = f"use resolution {working} or more" if working else "use larger images"
            raise PreflightError(f"resolution {resolution} cannot be trained on this dataset: {exc}; {hint}") from exc
