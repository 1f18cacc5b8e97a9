"""What sd-scripts accepts in a ``--dataset_config`` TOML, checked without sd-scripts installed.

Derived by reading sd-scripts' ``library/config_util.py`` (``ConfigSanitizer`` and the
``*SubsetParams``/``*DatasetParams`` dataclasses, commit 48d368f / v0.10.x) and written here as
plain data: which keys each level accepts, their types, which are required, and the rules between
levels. sd-scripts validates with voluptuous and rejects unknown keys at every level, so a key we
misspell or put at the wrong level fails training at start-up; checking here catches it when the
dataset is written, and lets CI check our TOML with no sd-scripts checkout.

Levels: ``[general]`` and each ``[[datasets]]`` may carry every "ascendable" subset option (a
default for the subsets below); ``[[datasets.subsets]]`` adds the "distinct" keys (image_dir,
is_reg, alpha_mask / conditioning_data_dir). A dataset's subsets are all DreamBooth-style (folders
+ caption files) or all ControlNet-style (every subset has ``conditioning_data_dir``; sd-scripts
uses that for masked loss with mask images); fine-tuning (``metadata_file``) subsets are not
written by us and are refused here.

``table_problems`` is the one check of a TOML table against its allowed keys, used here, for the
LECO prompt file (``leco.prompts``) and for a workflow's extra training options
(``operator_config``): each passes a check per key that raises ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..choices import choice_refusal

Check = Callable[[Any], Any]
"""Raises ``ValueError`` (its message says what is wrong) for a value its key does not take."""


def table_problems(table: Mapping[str, Any], checks: Mapping[str, Check]) -> Iterator[tuple[str, str | None]]:
    """``(key, problem)`` for each key of ``table`` whose value its check refuses, and ``(key, None)``
    for each key ``checks`` does not know: sd-scripts refuses unknown keys or, worse, ignores them."""
    for key, value in table.items():
        check = checks.get(key)
        if check is None:
            yield key, None
            continue
        try:
            check(value)
        except ValueError as refused:
            yield key, str(refused)


def _typed(ok: Callable[[Any], bool]) -> Check:
    def check(value: Any) -> None:
        if not ok(value):
            raise ValueError("has the wrong type")
    return check


def _is(kind: type) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, kind) and not (kind is int and isinstance(v, bool))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pair(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and len(v) == 2 and all(check(x) for x in v)


_STR, _INT, _BOOL, _DICT = _is(str), _is(int), _is(bool), _is(dict)

# Options every level may carry (sd-scripts: SUBSET_ASCENDABLE_SCHEMA + the dropout keys).
SUBSET_OPTIONS: dict[str, Callable[[Any], bool]] = {
    "color_aug": _BOOL, "face_crop_aug_range": _pair(lambda x: isinstance(x, float)),
    "flip_aug": _BOOL, "num_repeats": _INT, "random_crop": _BOOL, "shuffle_caption": _BOOL,
    "keep_tokens": _INT, "keep_tokens_separator": _STR, "secondary_separator": _STR,
    "caption_separator": _STR, "enable_wildcard": _BOOL, "token_warmup_min": _INT,
    "token_warmup_step": _number, "caption_prefix": _STR, "caption_suffix": _STR,
    "custom_attributes": _DICT, "resize_interpolation": _STR,
    "caption_dropout_every_n_epochs": _INT, "caption_dropout_rate": _number,
    "caption_tag_dropout_rate": _number,
}
# DreamBooth-style options that may also sit at dataset/general level.
DREAMBOOTH_OPTIONS = {"caption_extension": _STR, "class_tokens": _STR, "cache_info": _BOOL}
DREAMBOOTH_SUBSET_ONLY = {"image_dir": _STR, "is_reg": _BOOL, "alpha_mask": _BOOL}
CONDITIONING_OPTIONS = {"caption_extension": _STR, "cache_info": _BOOL}
CONDITIONING_SUBSET_ONLY = {"image_dir": _STR, "conditioning_data_dir": _STR}
DATASET_OPTIONS: dict[str, Callable[[Any], bool]] = {
    "batch_size": _INT, "bucket_no_upscale": _BOOL, "bucket_reso_steps": _INT,
    "enable_bucket": _BOOL, "max_bucket_reso": _INT, "min_bucket_reso": _INT,
    "validation_seed": _INT, "validation_split": lambda v: isinstance(v, float),
    "resolution": lambda v: _INT(v) or _pair(_INT)(v), "network_multiplier": lambda v: isinstance(v, float),
    "resize_interpolation": _STR,
}
INTERPOLATIONS = {"lanczos", "nearest", "bilinear", "linear", "bicubic", "cubic", "area", "box"}


class DatasetConfigError(ValueError):
    """The dataset TOML would be refused by sd-scripts; the message names the key and level."""


def _check_keys(table: Any, allowed: dict[str, Callable[[Any], bool]], where: str) -> list[str]:
    if not isinstance(table, dict):
        return [f"{where} must be a table"]
    checks = {key: _typed(ok) for key, ok in allowed.items()}
    return [f"{where}: key {key!r} is not accepted here" if problem is None else f"{where}: {key} = {table[key]!r} {problem}"
            for key, problem in table_problems(table, checks)]


def _subset_kind(subset: Any) -> str:
    if isinstance(subset, dict) and "metadata_file" in subset:
        return "finetune"
    if isinstance(subset, dict) and "conditioning_data_dir" in subset:
        return "conditioning"
    return "dreambooth"


def _check_dataset(dataset: Any, where: str) -> list[str]:
    subsets = dataset.get("subsets", []) if isinstance(dataset, dict) else []
    kinds = {_subset_kind(s) for s in subsets}
    if "finetune" in kinds:
        return [f"{where}: fine-tuning subsets (metadata_file) are not written by LoRA Foundry"]
    if len(kinds) > 1:
        return [f"{where}: DreamBooth subsets and conditioning (mask folder) subsets cannot share a dataset"]
    kind = kinds.pop() if kinds else "dreambooth"
    level = CONDITIONING_OPTIONS if kind == "conditioning" else DREAMBOOTH_OPTIONS
    subset_only = CONDITIONING_SUBSET_ONLY if kind == "conditioning" else DREAMBOOTH_SUBSET_ONLY
    allowed = {**DATASET_OPTIONS, **SUBSET_OPTIONS, **level, "subsets": lambda v: isinstance(v, list)}
    problems = _check_keys(dataset, allowed, where)
    if subsets and all(isinstance(s, dict) and s.get("is_reg") for s in subsets):
        problems.append(f"{where}: only is_reg subsets; sd-scripts uses reg images only up to the "
                        "dataset's own training image count (0 here), so they would never be used")
    for index, subset in enumerate(subsets):
        here = f"{where}.subsets[{index}]"
        problems += _check_keys(subset, {**SUBSET_OPTIONS, **level, **subset_only}, here)
        problems += [f"{here}: {key} is required" for key in subset_only
                     if key in ("image_dir", "conditioning_data_dir") and key not in subset]
    return problems


def _check_values(config: dict[str, Any]) -> list[str]:
    """Value rules sd-scripts enforces later, at dataset construction."""
    problems = []
    tables = [("general", config.get("general", {}))]
    for i, dataset in enumerate(config.get("datasets", [])):
        tables.append((f"datasets[{i}]", dataset))
        tables += [(f"datasets[{i}].subsets[{j}]", s) for j, s in enumerate(dataset.get("subsets", []))]
    for where, table in tables:
        if table.get("num_repeats", 1) < 1:
            problems.append(f"{where}: num_repeats must be at least 1")
        if "resize_interpolation" in table:
            problem = choice_refusal(table["resize_interpolation"], sorted(INTERPOLATIONS), "resize_interpolation")
            problems += [f"{where}: {problem}"] if problem else []
        if table.get("bucket_reso_steps", 64) % 8:
            problems.append(f"{where}: bucket_reso_steps must be a multiple of 8")
    problems += [_check_bucket_range(config.get("general", {}), d, f"datasets[{i}]")
                 for i, d in enumerate(config.get("datasets", []))]
    return [p for p in problems if p]


def _check_bucket_range(general: dict[str, Any], dataset: dict[str, Any], where: str) -> str:
    """sd-scripts asserts min_bucket_reso <= resolution <= max_bucket_reso when bucketing."""
    def value(key: str, default: Any) -> Any:
        return dataset.get(key, general.get(key, default))

    if not value("enable_bucket", False) or value("resolution", None) is None:
        return ""
    resolution = value("resolution", None)
    sides = resolution if isinstance(resolution, list) else [resolution, resolution]
    low, high = value("min_bucket_reso", 256), value("max_bucket_reso", 1024)
    if min(sides) < low or max(sides) > high:
        return (f"{where}: with enable_bucket, min_bucket_reso ({low}) <= resolution {resolution} "
                f"<= max_bucket_reso ({high}) must hold")
    return ""


def validate_dataset_config(config: dict[str, Any]) -> list[str]:
    """Every reason sd-scripts would refuse ``config`` (the parsed TOML); [] when it is valid."""
    problems = _check_keys(config, {"general": _DICT, "datasets": lambda v: isinstance(v, list)}, "top level")
    if problems:
        return problems
    general = {**DATASET_OPTIONS, **SUBSET_OPTIONS, **DREAMBOOTH_OPTIONS, **CONDITIONING_OPTIONS}
    problems += _check_keys(config.get("general", {}), general, "general")
    for index, dataset in enumerate(config.get("datasets", [])):
        problems += _check_dataset(dataset, f"datasets[{index}]")
    return problems or _check_values(config)


def check_dataset_config(config: dict[str, Any]) -> None:
    """Raise ``DatasetConfigError`` listing every problem, or return when sd-scripts will accept it."""
    problems = validate_dataset_config(config)
    if problems:
        raise DatasetConfigError("dataset.toml would be refused by sd-scripts: " + "; ".join(problems))
