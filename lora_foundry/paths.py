"""Names users type, and the roots every output path must stay under.

Workflows are shared as JSON and queued through an HTTP API, so every name that reaches the engine
(a workspace name, a trigger word, a dataset name, a preset name) may be hostile. Names are checked
here, once: ``..``, absolute paths, separators and Windows reserved names are refused with an error
that quotes the name, and every path the engine writes is confined to its root.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

OUTPUT_ROOT_ENV = "LORA_FOUNDRY_OUTPUT"

_WINDOWS_RESERVED = {
    "con", "prn", "aux", "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}
_SAFE_CHARS = re.compile(r"[^\w\-. ]+", re.UNICODE)
MAX_NAME_LENGTH = 120


class UnsafeNameError(ValueError):
    """A user-typed name that could escape its folder or is not a valid file name anywhere."""


def safe_name(name: str, what: str = "name") -> str:
    """Return ``name`` as a file-system-safe single path component, or raise ``UnsafeNameError``.

    Refused outright (not silently rewritten, so nothing lands somewhere unexpected): empty names,
    ``.``/``..``, anything with a path separator or a drive, absolute paths and reserved device
    names. Other awkward characters (``:*?"<>|`` and control characters) become ``_``.
    """
    if not isinstance(name, str):
        raise UnsafeNameError(f"{what} must be text, got {type(name).__name__}")
    stripped = unicodedata.normalize("NFC", name).strip()
    if not stripped:
        raise UnsafeNameError(f"{what} is empty")
    if "/" in stripped or "\\" in stripped or os.path.isabs(stripped) or re.match(r"^[A-Za-z]:", stripped):
        raise UnsafeNameError(f"{what} {name!r} contains a path separator or drive; give a plain name")
    if stripped in {".", ".."} or stripped.startswith(".."):
        raise UnsafeNameError(f"{what} {name!r} refers to a parent folder; give a plain name")
    cleaned = _SAFE_CHARS.sub("_", stripped).strip(" .")
    if not cleaned:
        raise UnsafeNameError(f"{what} {name!r} has no usable characters")
    if cleaned.split(".")[0].lower() in _WINDOWS_RESERVED:
        raise UnsafeNameError(f"{what} {name!r} is a reserved device name on Windows")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise UnsafeNameError(f"{what} {name!r} is longer than {MAX_NAME_LENGTH} characters")
    return cleaned


def confined(root: Path, *parts: str) -> Path:
    """``root / parts``, resolved, refusing any result outside ``root`` (symlinks included)."""
    root_resolved = Path(root).resolve()
    candidate = root_resolved.joinpath(*parts).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise UnsafeNameError(f"path {'/'.join(parts)!r} would leave {root_resolved}")
    return candidate


def default_output_root() -> Path:
    """Where outputs go outside ComfyUI: ``$LORA_FOUNDRY_OUTPUT`` or ``./out``."""
    return Path(os.environ.get(OUTPUT_ROOT_ENV, "out")).resolve()


def single_line(text: str, what: str) -> str:
    """``text`` stripped, refusing line breaks and control characters with an error naming ``what``.

    A caption is one line: sd-scripts reads only the first line of a caption file, so a trigger or
    template with a newline would silently train on a caption cut short.
    """
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text, got {type(text).__name__}")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") and ch != "\t" for ch in text.strip()):
        raise ValueError(f"{what} {text!r} contains a line break or control character; a caption is one line")
    return " ".join(text.split("\t")).strip()


def caption_line(text: str) -> str:
    """A caption as sd-scripts reads it: one line, control characters and line breaks turned into
    spaces and runs of spaces collapsed (the last guard before a caption file is written)."""
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return " ".join(cleaned.split())


def inside_by_name(root: Path, *parts: str) -> Path:
    """``root / parts`` checked by name only (``..`` and absolute parts refused), symlinks kept.

    For files the operator placed in a model folder: a symlink there (a shared model store) is
    the operator's choice and is followed, while a workflow, which can only name a file, still
    cannot climb out with ``..`` or an absolute path.
    """
    root_path = Path(os.path.abspath(root))
    candidate = Path(os.path.normpath(root_path.joinpath(*parts)))
    if candidate == root_path or root_path not in candidate.parents:
        raise UnsafeNameError(f"path {'/'.join(parts)!r} would leave {root_path}")
    return candidate
