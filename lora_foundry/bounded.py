"""Parsing text a client may have written: JSON and TOML with a cap on nesting and size.

Python's ``json`` and ``tomllib`` recurse once per nesting level, so ``[[[[...]]]]`` a few thousand
levels deep ends in ``RecursionError`` (and a huge text takes the memory it describes). Workflow
text inputs (``matrix_json``, ``prompts_toml``, ``axes``), manifests, presets and LoRA metadata all
go through ``parse_json``/``parse_toml`` here, which refuse such text before parsing with an error
naming ``where``. Files a client may have written (anything under ComfyUI's output folder: uploads
with ``type=output`` land there) are read with ``parse_json_file``/``parse_toml_file``, which stop
reading at the limit, so a huge file is refused before it takes memory, and whose errors name
``where`` (a dataset and file name), never the server path. Nothing the pack writes comes near the limits.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
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


def read_text_file(path: Path, where: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """The UTF-8 text of ``path``, read no further than the limit (``TextLimitError`` past it); a
    missing or unreadable file is an ``OSError`` naming ``where`` only."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(max_chars + 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where} does not exist") from None
    except OSError as error:
        raise OSError(f"{where} cannot be read ({error.strerror or type(error).__name__})") from None
    if len(text) > max_chars:
        raise TextLimitError(f"{where} is longer than {max_chars} characters; LoRA Foundry never writes one so large")
    return text


def parse_json_file(path: Path, where: str, max_chars: int = MAX_TEXT_CHARS) -> Any:
    """``parse_json`` of a file a client may have written (see ``read_text_file``)."""
    return parse_json(read_text_file(path, where, max_chars), where, max_chars)


def parse_toml_file(path: Path, where: str, max_chars: int = MAX_TEXT_CHARS) -> dict[str, Any]:
    """``parse_toml`` of a file a client may have written (see ``read_text_file``)."""
    return parse_toml(read_text_file(path, where, max_chars), where, max_chars)
