"""Names users type, and the roots every output path must stay under.

Workflows are shared as JSON and queued through an HTTP API, so every name that reaches the engine
(a workspace name, a trigger word, a dataset name, a preset name) may be hostile. Names are checked
here, once: ``safe_name`` for one plain component (``..``, absolute paths, separators and Windows
reserved names refused with an error that quotes the name), ``name_problem`` for a relative name
with folders, ``text_problem`` for what every typed path shares; every path the engine writes is
confined to its root.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from .choices import quoted

OUTPUT_ROOT_ENV = "LORA_FOUNDRY_OUTPUT"

_WINDOWS_RESERVED = {
    "con", "prn", "aux", "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}
_SAFE_CHARS = re.compile(r"[^\w\-. ]+", re.UNICODE)
MAX_NAME_LENGTH = 120
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Unicode's control characters and line/paragraph separators (categories Cc, Zl, Zp: the same 67
code points), as one pattern: checked per character in Python it was most of a manifest path's check."""
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux
MAX_PART_BYTES = 255  # NAME_MAX: one folder or file name, in bytes (120 four-byte characters are 480)
# slashes NFKC leaves alone (division, fraction, big and set-minus slashes): a name showing one
# reads as a path in the workflow while it is a single file name on disk
SLASH_LOOKALIKES = "\u2215\u2044\u29f8\u29f9\u2216"


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
    if CONTROL.search(text.strip().replace("\t", " ")):
        raise ValueError(f"{what} {text!r} contains a line break or control character; a caption is one line")
    return " ".join(text.split("\t")).strip()


def caption_line(text: str) -> str:
    """A caption as sd-scripts reads it: one line, control characters and line breaks turned into
    spaces and runs of spaces collapsed (the last guard before a caption file is written)."""
    return " ".join(CONTROL.sub(" ", text).split())


def text_problem(text: object) -> str | None:
    """Why ``text`` cannot be a path typed on purpose, or None: not text, a control character or
    line break (NUL included), or longer than the file system takes (``MAX_PATH_BYTES`` in all,
    ``MAX_PART_BYTES`` per folder or file name, in UTF-8). The rules every path and name share."""
    if not isinstance(text, str):
        return f"must be text, got {type(text).__name__}"
    if CONTROL.search(text):
        return "contains control characters"
    if len(text.encode("utf-8", "replace")) > MAX_PATH_BYTES or any(
            len(part.encode("utf-8", "replace")) > MAX_PART_BYTES for part in re.split(r"[/\\]", text)):
        return (f"is too long: a path may have {MAX_PATH_BYTES} bytes, each folder or file name "
                f"{MAX_PART_BYTES} (UTF-8)")
    return None


def name_problem(name: object, folder_ok: bool = False) -> str | None:
    """Why ``name`` is not a plain relative name (``sub/model.onnx``), or None. The one rule for
    names from outside (model names, LoRA names, a manifest's stored paths): ``text_problem``, and
    no absolute path (POSIX, Windows drive, UNC), no ``:`` anywhere (drive-relative ``C:x``, NTFS
    streams ``file:stream``), no leading ``~``, no ``.``/``..``/empty part, and no character that
    reads as ``/``, ``\\`` or ``.`` (fullwidth dots and slashes, ``SLASH_LOOKALIKES``). Backslashes
    are separators, as on Windows, so a name means the same on every server. A trailing ``/``
    (a folder) only with ``folder_ok``."""
    problem = text_problem(name)
    if problem is not None or not isinstance(name, str):
        return problem
    if not name:
        return "is empty"
    if name.startswith(("/", "\\", "~")) or ":" in name:
        return "is not a relative name (absolute, a drive, a stream or ~)"
    parts = _split(name, folder_ok)
    if parts is None:
        return "has an empty, '.' or '..' part"
    folded = unicodedata.normalize("NFKC", name)
    if (_separators(folded) != _separators(name) or _split(folded, folder_ok) is None
            or any(ch in SLASH_LOOKALIKES for ch in name)):
        return "has characters that look like '/', '\\' or '.' (fullwidth or other lookalikes); type them plainly"
    return None


def relative_parts(name: str, what: str = "name", folder_ok: bool = False) -> tuple[str, ...]:
    """The parts of a plain relative name (``name_problem`` says which), else ``UnsafeNameError``."""
    problem = name_problem(name, folder_ok)
    if problem is not None:
        raise UnsafeNameError(f"{what} {quoted(str(name))} {problem}")
    return _split(name, folder_ok) or ()  # never empty here: name_problem refused what _split does


def _separators(text: str) -> int:
    return text.count("/") + text.count("\\")


def _split(name: str, folder_ok: bool) -> tuple[str, ...] | None:
    """``name``'s parts (one trailing ``/`` dropped when ``folder_ok``), None for a bad part."""
    parts = name.replace("\\", "/").split("/")
    if folder_ok and len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]
    return None if any(part in ("", ".", "..") for part in parts) else tuple(parts)


def inside_by_name(root: Path, *parts: str) -> Path:
    """``root / parts`` checked by name only (``relative_parts``: ``..``, absolute parts, drives and
    the rest refused), symlinks kept.

    For files the operator placed in a model folder: a symlink there (a shared model store) is
    the operator's choice and is followed, while a workflow, which can only name a file, still
    cannot climb out with ``..`` or an absolute path. ``relative_parts`` leaves only plain parts (no
    empty, ``.``, ``..``, absolute or drive part), so the joined path is always below ``root``.
    """
    return Path(os.path.abspath(root)).joinpath(*relative_parts("/".join(parts), "path"))
