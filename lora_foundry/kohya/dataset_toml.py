"""The ``dataset.toml`` sd-scripts reads with ``--dataset_config``, checked before it is written.

Captions are ``.txt`` (sd-scripts' default is ``.caption``), the trigger stays first with
``keep_tokens`` (or the ``|||`` separator when captions use it), bucketing settings match what the
writer already did, so sd-scripts finds every image already in its bucket. Mask-folder subsets
(``conditioning_data_dir``) cannot carry ``is_reg`` in sd-scripts' schema, and reg images in a
dataset of their own are never used (sd-scripts repeats reg images up to the dataset's training
image count, which is then 0), so that combination is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomli_w

from .buckets import BucketSpec
from .subsets import WrittenSubset
from .toml_schema import check_dataset_config


def check_masks_with_reg(mask_mode: str, has_reg: bool) -> None:
    """Refuse mask-folder subsets next to regularisation images (see the module docstring)."""
    if mask_mode == "folder" and has_reg:
        raise ValueError(
            "sd-scripts cannot use regularisation images with mask-folder subsets (conditioning "
            "subsets take no is_reg, and reg images in a dataset of their own are never used); "
            "write png or webp with mask mode 'alpha', or leave out the regularisation images")


def _subset_table(root: Path, subset: WrittenSubset, mask_mode: str) -> dict[str, Any]:
    plan = subset.plan
    table: dict[str, Any] = {
        "image_dir": str(root / subset.relpath),
        "num_repeats": plan.repeats,
        "caption_extension": ".txt",
    }
    if plan.is_reg or mask_mode != "folder":  # conditioning subsets take no class_tokens
        table["class_tokens"] = plan.class_word or plan.trigger if plan.is_reg else f"{plan.trigger} {plan.class_word}".strip()
    if plan.is_reg:
        table["is_reg"] = True
    elif mask_mode == "folder":
        table["conditioning_data_dir"] = str(root / "masks" / plan.folder)
    elif mask_mode == "alpha" and subset.has_alpha:
        table["alpha_mask"] = True
    return table


def _dataset_table(resolution: int, buckets: BucketSpec | None, batch_size: int) -> dict[str, Any]:
    table: dict[str, Any] = {"resolution": resolution, "batch_size": batch_size}
    if buckets is None:
        return {**table, "enable_bucket": False}
    return {**table, "enable_bucket": True, "min_bucket_reso": min(buckets.min_side, resolution),
            "max_bucket_reso": max(buckets.max_side, resolution), "bucket_reso_steps": buckets.step,
            "bucket_no_upscale": buckets.no_upscale}


def dataset_config(
    root: Path,
    subsets: Sequence[WrittenSubset],
    resolution: int,
    buckets: BucketSpec | None,
    mask_mode: str = "none",
    keep_tokens: int = 1,
    separator: str | None = None,
    shuffle_caption: bool = False,
    batch_size: int = 1,
) -> dict[str, Any]:
    """The parsed form of dataset.toml for the subsets written under ``root``."""
    general: dict[str, Any] = {"caption_extension": ".txt", "shuffle_caption": shuffle_caption,
                               "keep_tokens": keep_tokens}
    if separator:
        general["keep_tokens_separator"] = separator
    train = [_subset_table(root, s, mask_mode) for s in subsets if not s.plan.is_reg]
    reg = [_subset_table(root, s, mask_mode) for s in subsets if s.plan.is_reg]
    check_masks_with_reg(mask_mode, bool(reg))
    datasets = [{**_dataset_table(resolution, buckets, batch_size), "subsets": train + reg}]
    config = {"general": general, "datasets": datasets}
    check_dataset_config(config)
    return config


def dataset_toml_text(config: dict[str, Any]) -> str:
    """TOML text with a comment saying how to use it."""
    header = ("# sd-scripts dataset config written by LoRA Foundry.\n"
              "# Train with: --dataset_config dataset.toml (add --masked_loss when subsets have "
              "alpha_mask or conditioning_data_dir)\n")
    return header + tomli_w.dumps(config)
