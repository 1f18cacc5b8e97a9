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

Unknown keys behave as upstream's loader treats them, but never silently: where upstream ignores
them (the top level, slider targets) they are accepted and listed in ``PromptSet.warnings`` (a
misspelt ``guidance_scale`` silently training at 1.0 costs an hour); in a ``[[prompts]]`` item,
where upstream's ``PromptSettings(**item)`` stops with a TypeError, they are refused with the key and
its line. A target's neutrals come from the first of ``neutrals``, ``neutral_prompt_file``,
``prompt_file``, ``neutral`` it has, else from the top level, where all three lists add up (upstream's
order). Neutral files are read beside the TOML, only inside the folders a workflow may read
(``ReadRoots``). tomllib gives no positions, so lines are found in the source text (``_KeyLines``).
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..kohya.toml_schema import table_problems
from ..paths import UnsafeNameError
from ..read_roots import ReadRoots

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
# train_leco.py command-line options people put in the prompt file by mistake: named in the warning.
RUN_OPTIONS = ("min_snr_gamma", "noise_offset", "zero_terminal_snr", "max_denoising_steps",
               "leco_denoise_guidance_scale", "learning_rate", "max_train_steps", "network_dim", "network_alpha")


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


@dataclass
class PromptSet:
    """What a prompt TOML describes: the settings, what was accepted with a warning, the files read."""

    settings: list[PromptSetting]
    warnings: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # name as written in the TOML -> file read


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

    def __init__(self, text: str, source: str, base_dir: Path | None = None, roots: ReadRoots | None = None) -> None:
        self.lines = _KeyLines(text)
        self.source = source
        self.base_dir = base_dir
        self.roots = roots if roots is not None else ReadRoots.of([base_dir])
        self.warnings: list[str] = []
        self.files: dict[str, Path] = {}

    def ignore(self, key: str, array: str | None = None, index: int = 0) -> None:
        """Record an unknown key upstream ignores too (accepted, listed in the warnings)."""
        hint = (" it is a train_leco.py option, not a prompt-file key: set it on the node or the command line"
                if key in RUN_OPTIONS else " sd-scripts ignores it too")
        self.warnings.append(str(self.fail(f"is not a LECO key and was ignored;{hint}", key, array, index)))

    def fail(self, message: str, key: str, array: str | None = None, index: int = 0) -> PromptFileError:
        line = self.lines.find(key, array, index)
        where = f"{self.source}, line {line}" if line else self.source
        item = f" (item {index + 1} of [[{array}]])" if array else ""
        return PromptFileError(f"{where}: key {key!r}{item}: {message}")

    def check_item(self, item: Any, allowed: Sequence[str], array: str | None, index: int,
                   strict: bool = False) -> dict[str, Any]:
        """Check ``item``'s values (``toml_schema.table_problems``); unknown keys are refused
        (``strict``: upstream stops on them) or ignored with a warning. Returns the item without them."""
        if not isinstance(item, dict):
            raise self.fail("each entry must be a table", array or "prompts", None, index)
        ignored = set()
        for key, problem in table_problems(item, {key: functools.partial(_check_value, key) for key in allowed}):
            if problem is not None:
                raise self.fail(problem, key, array, index)
            if strict:
                raise self.fail(f"is not a LECO key (sd-scripts' train_leco.py stops on it too); allowed: "
                                f"{', '.join(allowed)}", key, array, index)
            self.ignore(key, array, index)
            ignored.add(key)
        return {k: v for k, v in item.items() if k not in ignored}


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


def _whole(value: Any) -> bool:
    """A whole number: ``512`` or ``512.0`` (upstream ``int()``s either; ``512.5`` is refused here)."""
    return not isinstance(value, bool) and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))


def _one_resolution(value: Any) -> tuple[int, int]:
    if isinstance(value, list | tuple):
        if len(value) != 2 or not all(_whole(v) for v in value):
            raise ValueError(f"a resolution list must be [height, width] of whole numbers, got {value!r}")
        size = (int(value[0]), int(value[1]))
    elif _whole(value):
        size = (int(value), int(value))
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


def _prompt_setting(item: dict[str, Any], check: _Checker, array: str, index: int) -> PromptSetting:
    unconditional = item.get("unconditional", "")
    neutral = item.get("neutral")
    sizes = resolution_list(item["resolution"])
    if len(sizes) > 1:  # upstream's normalize_resolution raises on a list of sizes here too
        raise check.fail("takes one size in a target item; list several sizes with a slider's 'resolutions', or "
                         "repeat the item once per size", "resolution", array, index)
    return PromptSetting(
        target=item["target"], positive=item["target"] if item.get("positive") is None else item["positive"],
        unconditional=unconditional,
        neutral=unconditional if neutral is None else neutral, action=item.get("action", "erase"),
        guidance_scale=float(item["guidance_scale"]), resolution=sizes[0],
        dynamic_resolution=bool(item["dynamic_resolution"]), batch_size=int(item["batch_size"]),
        dynamic_crops=bool(item["dynamic_crops"]), multiplier=float(item["multiplier"]),
        weight=float(item["weight"]))


def _neutral_lines(name: Any, check: _Checker, key: str, array: str | None = None, index: int = 0) -> list[str]:
    """A neutral prompt file's non-empty lines (upstream's ``_read_non_empty_lines``), read beside the
    TOML and only inside the read roots: a workflow is untrusted, so it cannot name /etc/passwd."""
    if not isinstance(name, str) or not name.strip():
        raise check.fail(f"must be a file name, got {name!r}", key, array, index)
    if check.base_dir is None and not check.roots.roots:
        raise check.fail("needs the prompt TOML saved as a file (the list is read beside it)", key, array, index)
    wanted = check.base_dir / name if check.base_dir is not None else Path(name)
    try:
        path = check.roots.resolve(str(wanted), key, "file")
        lines = [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
    except (UnsafeNameError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise check.fail(f"cannot read {name!r}: {exc}", key, array, index) from None
    check.files[name] = path
    return lines


def _top_neutrals(table: dict[str, Any], check: _Checker) -> list[str]:
    """The top level's neutrals: ``neutrals`` + both files' lines, added up (upstream)."""
    found = [str(v) for v in table.get("neutrals", [])]
    for key in ("neutral_prompt_file", "prompt_file"):
        if key in table:
            found += _neutral_lines(table[key], check, key)
    return found


def _target_neutrals(target: dict[str, Any], check: _Checker, index: int) -> list[str]:
    """A target's own neutrals: the first of ``neutrals``, the two files, ``neutral`` (upstream's
    elif chain: a target with ``neutrals`` and a file trains on ``neutrals`` only)."""
    if "neutrals" in target:
        return [str(v) for v in target["neutrals"]]
    for key in ("neutral_prompt_file", "prompt_file"):
        if key in target:
            return _neutral_lines(target[key], check, key, "targets", index)
    return [str(target["neutral"] or "")] if "neutral" in target else []


def _from_prompts_array(data: dict[str, Any], check: _Checker) -> list[PromptSetting]:
    items = data["prompts"]
    if not isinstance(items, list):
        raise check.fail("must be an array of tables ([[prompts]])", "prompts")
    check.check_item({k: v for k, v in data.items() if k != "prompts"}, PROMPT_KEYS, None, 0)
    defaults = {**DEFAULTS, **{k: v for k, v in data.items() if k in PROMPT_KEYS}}
    settings: list[PromptSetting] = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and "target_class" in item:
            kept = check.check_item(item, SLIDER_KEYS, "prompts", index)
            merged = {**{k: v for k, v in defaults.items() if k in SLIDER_KEYS}, **kept}
            settings += _expand_checked(merged, [str(item.get("neutral", "") or "")], check, "prompts", index)
        else:
            check.check_item(item, PROMPT_KEYS, "prompts", index, strict=True)
            if "target" not in item:
                raise check.fail("is required in every [[prompts]] item (or target_class for a slider)",
                                 "target", "prompts", index)
            settings.append(_prompt_setting({**defaults, **item}, check, "prompts", index))
    return settings


def _expand_checked(item: dict[str, Any], neutrals: list[str], check: _Checker, array: str | None,
                    index: int) -> list[PromptSetting]:
    try:
        return [s for neutral in neutrals for s in expand_slider(item, neutral)]
    except ValueError as exc:
        raise check.fail(str(exc), "target_class", array, index) from None


def _from_slider_table(data: dict[str, Any], check: _Checker) -> list[PromptSetting]:
    table = data.get("slider", data)
    targets = table.get("targets")
    if targets is None:
        if "target_class" not in table and "target" not in table:
            raise PromptFileError(f"{check.source}: no [[prompts]] items and no slider targets")
        targets = [table]
    if not isinstance(targets, list) or not targets:
        raise check.fail("must be a non-empty array of tables", "targets")
    _check_top_level(table, data, check)
    if isinstance(targets[0], dict) and "target" in targets[0]:
        defaults = {**DEFAULTS, **{k: v for k, v in table.items() if k in PROMPT_KEYS}}
        return [_prompt_setting({**defaults, **check.check_item(t, PROMPT_KEYS, "targets", i, strict=True)},
                                check, "targets", i) for i, t in enumerate(targets)]
    defaults = {**DEFAULTS, **{k: v for k, v in table.items() if k in SLIDER_KEYS}}
    neutrals = _top_neutrals(table, check) or [str(table.get("neutral", "") or "")]
    settings: list[PromptSetting] = []
    for index, target in enumerate(targets):
        kept = check.check_item(target, SLIDER_KEYS + NEUTRAL_LIST_KEYS, "targets", index)
        merged = {**{k: v for k, v in defaults.items() if k in SLIDER_KEYS}, **kept}
        settings += _expand_checked(merged, _target_neutrals(kept, check, index) or neutrals, check, "targets", index)
    return settings


def _check_top_level(table: dict[str, Any], data: dict[str, Any], check: _Checker) -> None:
    """Values of the slider layout's top-level keys checked; unknown ones listed as ignored."""
    known = [*dict.fromkeys([*SLIDER_KEYS, *PROMPT_KEYS, *NEUTRAL_LIST_KEYS])]
    check.check_item({k: v for k, v in table.items() if k != "targets"}, known, None, 0)
    if table is not data:
        check.check_item({k: v for k, v in data.items() if k != "slider"}, [], None, 0)


def read_prompt_set(text: str, source: str = "prompt TOML", base_dir: Path | None = None,
                    roots: ReadRoots | None = None) -> PromptSet:
    """Every training setting a prompt TOML describes, in upstream's order, with the warnings and
    the neutral files read (relative to ``base_dir``, inside ``roots``: default ``base_dir`` alone);
    ``PromptFileError`` names the key and line of the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PromptFileError(f"{source}: not valid TOML: {exc}") from None
    if not data:
        raise PromptFileError(f"{source}: the prompt file is empty")
    check = _Checker(text, source, base_dir, roots)
    settings = _from_prompts_array(data, check) if "prompts" in data else _from_slider_table(data, check)
    if not settings:
        raise PromptFileError(f"{source}: no prompt settings found")
    return PromptSet(settings, check.warnings, check.files)


def parse_prompt_text(text: str, source: str = "prompt TOML", base_dir: Path | None = None,
                      roots: ReadRoots | None = None) -> list[PromptSetting]:
    """The settings of ``read_prompt_set`` (callers that show no warnings)."""
    return read_prompt_set(text, source, base_dir, roots).settings


def load_prompt_file(path: Path, roots: ReadRoots | None = None) -> PromptSet:
    """``read_prompt_set`` of a file; neutral prompt lists are read beside it."""
    path = Path(path)
    return read_prompt_set(path.read_text("utf-8"), path.name, path.parent, roots)
