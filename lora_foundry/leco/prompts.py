"""sd-scripts' LECO ``--prompts_file`` TOML: read, check, expand sliders, write.

The file moves between us and kohya's ``train_leco.py``/``sdxl_train_leco.py``, so the layouts,
defaults and slider expansion follow upstream's ``library/leco_train_util.load_prompt_settings``:

- ``[[prompts]]`` items with ``target`` (required), ``positive`` (defaults to target),
  ``unconditional`` (""), ``neutral`` (defaults to unconditional), ``action`` (erase|enhance),
  ``guidance_scale``, ``resolution`` (int or [height, width]), ``dynamic_resolution``, ``batch_size``,
  ``dynamic_crops``, ``multiplier``, ``weight``; top-level keys of those names are defaults. An item
  with ``target_class`` is a slider.
- Or a slider file: ``[slider]`` (or the top level) with ``targets`` and optional ``neutrals``,
  ``neutral_prompt_file``/``prompt_file`` (one neutral prompt per line).
- A slider with positive and negative expands into 4 settings, with one side into 2 (see
  ``expand_slider``); each further neutral prompt and resolution repeats the expansion.

Upstream passes unknown keys to a dataclass (a TypeError) or ignores them; we refuse them with the
key and its line, since a misspelt ``guidance_scale`` silently training at 1.0 costs an hour.
tomllib gives no positions, so lines are found in the source text (``_KeyLines``).
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..kohya.toml_schema import table_problems
from ..paths import UnsafeNameError, confined

ACTIONS = ("erase", "enhance")
PROMPT_KEYS = ("target", "positive", "unconditional", "neutral", "action", "guidance_scale", "resolution",
               "dynamic_resolution", "batch_size", "dynamic_crops", "multiplier", "weight")
SLIDER_KEYS = ("target_class", "positive", "negative", "neutral", "guidance_scale", "resolution", "resolutions",
               "dynamic_resolution", "batch_size", "dynamic_crops", "multiplier", "weight")
NEUTRAL_LIST_KEYS = ("neutrals", "neutral_prompt_file", "prompt_file")
DEFAULTS: dict[str, Any] = {"guidance_scale": 1.0, "resolution": 512, "dynamic_resolution": False,
                            "batch_size": 1, "dynamic_crops": False, "multiplier": 1.0, "weight": 1.0}
_TEXT_KEYS = {"target", "positive", "unconditional", "neutral", "action", "target_class", "negative"}
_NUMBER_KEYS = {"guidance_scale", "multiplier", "weight"}
_BOOL_KEYS = {"dynamic_resolution", "dynamic_crops"}
MIN_RESOLUTION, MAX_RESOLUTION = 64, 4096


class PromptFileError(ValueError):
    """A prompt TOML that sd-scripts would refuse or misread; the message names the key and line."""


@dataclass(frozen=True)
class PromptSetting:
    """One training setting after defaults and slider expansion (upstream's ``PromptSettings``)."""

    target: str
    positive: str
    unconditional: str
    neutral: str
    action: str = "erase"
    guidance_scale: float = 1.0
    resolution: tuple[int, int] = (512, 512)  # (height, width), as upstream's get_resolution
    dynamic_resolution: bool = False
    batch_size: int = 1
    dynamic_crops: bool = False
    multiplier: float = 1.0
    weight: float = 1.0

    def prompts(self) -> tuple[str, str, str, str]:
        return (self.target, self.positive, self.unconditional, self.neutral)

    def preview(self) -> dict[str, Any]:
        """The fields upstream records per setting in ``ss_leco_preview``."""
        keys = ("target", "positive", "unconditional", "neutral", "action", "multiplier", "weight")
        return {k: v for k, v in asdict(self).items() if k in keys}


class _KeyLines:
    """1-based line of a key inside the n-th ``[[array]]`` table (or the top level) of a TOML text."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()

    def find(self, key: str, array: str | None = None, index: int = 0) -> int | None:
        start, stop = 0, len(self._lines)
        if array is not None:
            headers = [i for i, line in enumerate(self._lines)
                       if re.match(rf"^\s*\[\[\s*{re.escape(array)}\s*\]\]", line)]
            if index < len(headers):
                start = headers[index]
                later = [i for i, line in enumerate(self._lines) if i > start and re.match(r"^\s*\[", line)]
                stop = later[0] if later else stop
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for i in range(start, stop):
            if pattern.match(self._lines[i]):
                return i + 1
        word = re.compile(rf"\b{re.escape(key)}\b")
        return next((i + 1 for i in range(start, stop) if word.search(self._lines[i])), None)


class _Checker:
    """Type and range checks that raise ``PromptFileError`` with the key's line."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = _KeyLines(text)
        self.source = source

    def fail(self, message: str, key: str, array: str | None = None, index: int = 0) -> PromptFileError:
        line = self.lines.find(key, array, index)
        where = f"{self.source}, line {line}" if line else self.source
        item = f" (item {index + 1} of [[{array}]])" if array else ""
        return PromptFileError(f"{where}: key {key!r}{item}: {message}")

    def check_item(self, item: Any, allowed: Sequence[str], array: str | None, index: int,
                   unknown: str = "") -> dict[str, Any]:
        """``item`` when every key is allowed and every value right; else the first problem, with its line."""
        if not isinstance(item, dict):
            raise self.fail("each entry must be a table", array or "prompts", None, index)
        for key, problem in table_problems(item, {key: functools.partial(_check_value, key) for key in allowed}):
            raise self.fail(problem or unknown or f"is not a LECO key; allowed: {', '.join(allowed)}", key, array, index)
        return item


def _check_value(key: str, value: Any) -> None:
    """Raise ``ValueError`` saying what is wrong with ``value`` for ``key`` (upstream's types and ranges)."""
    if key in _TEXT_KEYS and not isinstance(value, str):
        raise ValueError(f"must be text, got {value!r}")
    if key == "action" and value not in ACTIONS:
        raise ValueError(f"must be 'erase' or 'enhance', got {value!r}")
    if key in _NUMBER_KEYS and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"must be a number, got {value!r}")
    if key in _BOOL_KEYS and not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    if key == "batch_size" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"must be a whole number >= 1, got {value!r}")
    if key in ("resolution", "resolutions"):
        resolution_list(value)
    if key == "neutrals" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ValueError("must be a list of prompts")


def _one_resolution(value: Any) -> tuple[int, int]:
    if isinstance(value, list | tuple):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"a resolution list must be [height, width] of whole numbers, got {value!r}")
        size = (int(value[0]), int(value[1]))
    elif isinstance(value, int) and not isinstance(value, bool):
        size = (value, value)
    else:
        raise ValueError(f"must be a whole number or [height, width], got {value!r}")
    if not all(MIN_RESOLUTION <= s <= MAX_RESOLUTION and s % 8 == 0 for s in size):
        raise ValueError(f"sizes must be multiples of 8 between {MIN_RESOLUTION} and {MAX_RESOLUTION}, got {value!r}")
    return size


def resolution_list(value: Any) -> list[tuple[int, int]]:
    """``512`` / ``[512, 768]`` / ``[[512, 512], [768, 768]]`` as (height, width) pairs (upstream rules)."""
    if isinstance(value, list) and value and isinstance(value[0], list | tuple):
        return [_one_resolution(v) for v in value]
    return [_one_resolution(value)]


def expand_slider(item: dict[str, Any], neutral: str) -> list[PromptSetting]:
    """One slider target as upstream expands it: with positive and negative, 4 settings
    (negative/positive erase +m, positive/negative enhance +m, positive/negative erase -m,
    negative/positive enhance -m), with one side 2 (enhance/erase at +m/-m, or the reverse for a
    negative-only slider); repeated per resolution."""
    positive, negative = str(item.get("positive", "") or ""), str(item.get("negative", "") or "")
    m = float(item.get("multiplier", 1.0))
    if positive.strip() and negative.strip():
        pairs = [(negative, positive, "erase", m), (positive, negative, "enhance", m),
                 (positive, negative, "erase", -m), (negative, positive, "enhance", -m)]
    elif negative.strip():
        pairs = [(negative, "", "erase", m), (negative, "", "enhance", -m)]
    elif positive.strip():
        pairs = [(positive, "", "enhance", m), (positive, "", "erase", -m)]
    else:
        raise ValueError("a slider needs a positive or a negative prompt")
    common = dict(target=str(item.get("target_class", "")), neutral=neutral,
                  guidance_scale=float(item.get("guidance_scale", 1.0)),
                  dynamic_resolution=bool(item.get("dynamic_resolution", False)),
                  batch_size=int(item.get("batch_size", 1)), dynamic_crops=bool(item.get("dynamic_crops", False)),
                  weight=float(item.get("weight", 1.0)))
    return [PromptSetting(**common, positive=pos, unconditional=uncond, action=action, resolution=size,
                          multiplier=mult)
            for size in resolution_list(item.get("resolutions", item.get("resolution", 512)))
            for pos, uncond, action, mult in pairs]


def _prompt_setting(item: dict[str, Any]) -> PromptSetting:
    unconditional = item.get("unconditional", "")
    neutral = item.get("neutral")
    return PromptSetting(
        target=item["target"], positive=item["target"] if item.get("positive") is None else item["positive"],
        unconditional=unconditional,
        neutral=unconditional if neutral is None else neutral, action=item.get("action", "erase"),
        guidance_scale=float(item["guidance_scale"]), resolution=resolution_list(item["resolution"])[0],
        dynamic_resolution=bool(item["dynamic_resolution"]), batch_size=int(item["batch_size"]),
        dynamic_crops=bool(item["dynamic_crops"]), multiplier=float(item["multiplier"]),
        weight=float(item["weight"]))


def _neutral_lines(name: Any, base_dir: Path | None, check: _Checker, key: str) -> list[str]:
    """A neutral prompt file's non-empty lines; only beside the TOML (a workflow is untrusted)."""
    if base_dir is None:
        raise check.fail("needs the prompt TOML saved as a file (the list is read beside it)", key)
    try:
        path = confined(base_dir, *Path(str(name)).parts)
        return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
    except (UnsafeNameError, OSError) as exc:
        raise check.fail(f"cannot read {name!r} beside the TOML: {exc}", key) from None


def _table_neutrals(table: dict[str, Any], base_dir: Path | None, check: _Checker) -> list[str]:
    found = [str(v) for v in table.get("neutrals", [])]
    for key in ("neutral_prompt_file", "prompt_file"):
        if key in table:
            found += _neutral_lines(table[key], base_dir, check, key)
    return found


def _from_prompts_array(data: dict[str, Any], check: _Checker) -> list[PromptSetting]:
    items = data["prompts"]
    if not isinstance(items, list):
        raise check.fail("must be an array of tables ([[prompts]])", "prompts")
    check.check_item({k: v for k, v in data.items() if k != "prompts"}, PROMPT_KEYS, None, 0,
                     f"is not a LECO key; allowed at the top: prompts, {', '.join(PROMPT_KEYS)}")
    defaults = {**DEFAULTS, **{k: v for k, v in data.items() if k in PROMPT_KEYS}}
    settings: list[PromptSetting] = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and "target_class" in item:
            check.check_item(item, SLIDER_KEYS, "prompts", index)
            merged = {**{k: v for k, v in defaults.items() if k in SLIDER_KEYS}, **item}
            settings += _expand_checked(merged, [str(item.get("neutral", "") or "")], check, "prompts", index)
        else:
            check.check_item(item, PROMPT_KEYS, "prompts", index)
            if "target" not in item:
                raise check.fail("is required in every [[prompts]] item (or target_class for a slider)",
                                 "target", "prompts", index)
            settings.append(_prompt_setting({**defaults, **item}))
    return settings


def _expand_checked(item: dict[str, Any], neutrals: list[str], check: _Checker, array: str | None,
                    index: int) -> list[PromptSetting]:
    try:
        return [s for neutral in neutrals for s in expand_slider(item, neutral)]
    except ValueError as exc:
        raise check.fail(str(exc), "target_class", array, index) from None


def _from_slider_table(data: dict[str, Any], base_dir: Path | None, check: _Checker) -> list[PromptSetting]:
    table = data.get("slider", data)
    targets = table.get("targets")
    if targets is None:
        if "target_class" not in table and "target" not in table:
            raise PromptFileError(f"{check.source}: no [[prompts]] items and no slider targets")
        targets = [table]
    if not isinstance(targets, list) or not targets:
        raise check.fail("must be a non-empty array of tables", "targets")
    if isinstance(targets[0], dict) and "target" in targets[0]:
        defaults = {**DEFAULTS, **{k: v for k, v in table.items() if k in PROMPT_KEYS}}
        return [_prompt_setting({**defaults, **check.check_item(t, PROMPT_KEYS, "targets", i)})
                for i, t in enumerate(targets)]
    defaults = {**DEFAULTS, **{k: v for k, v in table.items() if k in SLIDER_KEYS}}
    neutrals = _table_neutrals(table, base_dir, check) or [str(table.get("neutral", "") or "")]
    settings: list[PromptSetting] = []
    for index, target in enumerate(targets):
        check.check_item(target, SLIDER_KEYS + NEUTRAL_LIST_KEYS, "targets", index)
        own = _table_neutrals(target, base_dir, check)
        if not own and "neutral" in target:
            own = [str(target["neutral"] or "")]
        merged = {**{k: v for k, v in defaults.items() if k in SLIDER_KEYS}, **target}
        settings += _expand_checked(merged, own or neutrals, check, "targets", index)
    return settings


def parse_prompt_text(text: str, source: str = "prompt TOML", base_dir: Path | None = None) -> list[PromptSetting]:
    """Every training setting a prompt TOML describes, in upstream's order; ``PromptFileError`` names
    the key and line of the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PromptFileError(f"{source}: not valid TOML: {exc}") from None
    if not data:
        raise PromptFileError(f"{source}: the prompt file is empty")
    check = _Checker(text, source)
    settings = _from_prompts_array(data, check) if "prompts" in data else _from_slider_table(data, base_dir, check)
    if not settings:
        raise PromptFileError(f"{source}: no prompt settings found")
    return settings


def load_prompt_file(path: Path) -> list[PromptSetting]:
    """``parse_prompt_text`` of a file; neutral prompt lists are read beside it."""
    path = Path(path)
    return parse_prompt_text(path.read_text("utf-8"), path.name, path.parent)
