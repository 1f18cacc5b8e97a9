"""Parsing text a client may have written: JSON and TOML with a cap on nesting and size.

Python's ``json`` and ``tomllib`` recurse once per nesting level, so ``[[[[...]]]]`` a few thousand
levels deep ends in ``RecursionError`` (and a huge text takes the memory it describes). Workflow
text inputs (``matrix_json``, ``prompts_toml``, ``axes``), manifests, presets and LoRA metadata all
go through ``parse_json``/``parse_toml`` here, which refuse such text before parsing with an error
naming ``where``. Nothing the pack writes comes near the limits.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

MAX_DEPTH = 64
MAX_TEXT_CHARS = 1 << 20  # 1 MiB of text: a settings field, a prompt file, a LoRA header's metadata


class TextLimitError(ValueError):
    """Text nested deeper or longer than the pack ever reads."""


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting in ``text`` (brackets inside strings count too: over-estimating is
    safe, and text that needs more than ``MAX_DEPTH`` levels is no setting we read)."""
    deepest = level = 0
    for ch in text:
        if ch in "[{":
            level += 1
            deepest = max(deepest, level)
        elif ch in "]}":
            level = max(level - 1, 0)
    return deepest


def check_text(text: object, where: str, max_chars: int = MAX_TEXT_CHARS, max_depth: int = MAX_DEPTH) -> str:
    """``text`` when it is a string within the size and nesting limits, else ``TextLimitError``."""
    if not isinstance(text, str):
        raise TextLimitError(f"{where} must be text, got {type(text).__name__}")
    if len(text) > max_chars:
        raise TextLimitError(f"{where} is {len(text)} characters long; the limit is {max_chars}")
    if nesting_depth(text) > max_depth:
        raise TextLimitError(f"{where} is nested more than {max_depth} levels deep")
    return text


def parse_json(text: object, where: str, max_chars: int = MAX_TEXT_CHARS) -> Any:
    """JSON ``text`` within the limits, or ``ValueError`` naming ``where``."""
    checked = check_text(text, where, max_chars)
    try:
        return json.loads(checked)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{where} is not valid JSON ({str(error)[:200]})") from None


def parse_toml(text: object, where: str, max_chars: int = MAX_TEXT_CHARS) -> dict[str, Any]:
    """TOML ``text`` within the limits, or ``ValueError`` naming ``where``."""
    checked = check_text(text, where, max_chars)
    try:
        return tomllib.loads(checked)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{where} is not valid TOML ({str(error)[:200]})") from None
