"""The folders a workflow may read media from, and the one function that resolves a path in them.

A workflow is untrusted input: people share them, and a server may be reachable by others. A
two-node workflow that loads ``/home/someone/private`` as an "image folder" and previews it would
copy private pictures into the workspace and serve them back. So every path a user types (a video,
an image folder, reference images, a tag folder) goes through ``ReadRoots.resolve``:

- relative paths are looked up in each root in order (ComfyUI's input folder first);
- absolute paths, ``..`` and symlinks are allowed only when the *resolved* path lies inside a root
  (symlinks are resolved before the check, so a link in the input folder that points at ``/etc``
  is refused, and a link that stays inside the roots works);
- the refusal names the input and the value, and it is the same whether or not the target exists,
  so a workflow cannot probe the server's disk by the error it gets.

Which roots: what ComfyUI itself already serves through ``GET /view`` (its input and output
folders), plus extra folders the operator lists in ``<ComfyUI user dir>/lora_foundry/read_roots.json``
(``{"read_roots": ["/srv/footage"]}``). A workflow can never add a root. The engine never imports
ComfyUI: ``nodes/_comfy.read_roots()`` builds a ``ReadRoots`` from ComfyUI's folders.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .choices import quoted
from .paths import UnsafeNameError, text_problem

log = logging.getLogger(__name__)

CONFIG_RELPATH = ("lora_foundry", "read_roots.json")
CONFIG_KEY = "read_roots"


class PathNotAllowedError(UnsafeNameError):
    """A user-typed path that would read outside the folders workflows may read."""


def _real(path: Path | str) -> Path:
    """``path`` with every symlink resolved (also for parts that do not exist yet)."""
    return Path(os.path.realpath(path))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True)
class ReadRoots:
    """Resolved folders a workflow may read from; relative paths are looked up in this order."""

    roots: tuple[Path, ...]

    @classmethod
    def of(cls, folders: Iterable[Path | str | None]) -> ReadRoots:
        """Roots from folders (None and duplicates dropped), each resolved once, order kept."""
        seen: list[Path] = []
        for folder in folders:
            if folder is not None and str(folder).strip():
                real = _real(Path(folder).expanduser())
                if real not in seen:
                    seen.append(real)
        return cls(tuple(seen))

    def contains(self, path: Path | str) -> bool:
        """True when ``path``, symlinks resolved, lies inside one of the roots."""
        real = _real(path)
        return any(_inside(real, root) for root in self.roots)

    def describe(self) -> str:
        return ", ".join(str(root) for root in self.roots) or "(none configured)"

    def resolve(self, value: str, what: str, kind: str = "any") -> Path:
        """The existing file (``kind="file"``), folder (``"folder"``) or either that ``value``
        names, resolved inside the roots; otherwise an error naming ``what`` and ``value``."""
        text = _clean(value, what)
        given = Path(text)
        candidates = [given] if given.is_absolute() else [root / given for root in self.roots]
        refused = False
        for candidate in candidates:
            if not self.contains(candidate):
                refused = True  # absolute outside, too many "..", or a symlink that leads out
            elif _is_kind(_real(candidate), kind):
                return _real(candidate)
        if refused:
            raise PathNotAllowedError(
                f"{what} {value!r} is outside the folders workflows may read ({self.describe()}); put it in "
                f"ComfyUI's input folder and give its name, or ask the server operator to list its folder in "
                f"<ComfyUI user dir>/{'/'.join(CONFIG_RELPATH)}")
        wanted = {"file": "file", "folder": "folder"}.get(kind, "file or folder")
        raise FileNotFoundError(f"{what} {value!r}: no such {wanted} in {self.describe()}")

    def keep_inside(self, paths: Iterable[Path]) -> list[Path]:
        """``paths`` without those that resolve outside the roots (a symlink in a listed folder
        that points elsewhere); each dropped one is logged by name."""
        kept = []
        for path in paths:
            if self.contains(path):
                kept.append(path)
            else:
                log.warning("skipping %s: it links outside the folders workflows may read", path)
        return kept


def _clean(value: object, what: str) -> str:
    """``value`` without surrounding quotes and spaces, refused by ``paths.text_problem`` (control
    characters, too long); absolute paths and ``..`` are judged later, by where they resolve."""
    if not isinstance(value, str):
        raise PathNotAllowedError(f"{what} must be text (a path), got {type(value).__name__}")
    text = value.strip().strip('"').strip()
    if not text:
        raise ValueError(f"no {what} given")
    problem = text_problem(text)
    if problem is not None:
        raise PathNotAllowedError(f"{what} {quoted(value)} {problem}")
    return text


def _is_kind(path: Path, kind: str) -> bool:
    if kind == "file":
        return path.is_file()
    if kind == "folder":
        return path.is_dir()
    return path.exists()


def operator_roots(user_dir: Path | None) -> list[Path]:
    """Extra read roots the operator listed in ``<user_dir>/lora_foundry/read_roots.json``.

    A missing file means none; an unreadable or malformed one is an error (the operator meant
    something, and silently ignoring it would be confusing), relative entries are refused.
    """
    if user_dir is None:
        return []
    config = Path(user_dir).joinpath(*CONFIG_RELPATH)
    if not config.is_file():
        return []
    try:
        listed = json.loads(config.read_text(encoding="utf-8")).get(CONFIG_KEY, [])
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"{config}: not a JSON object with a {CONFIG_KEY!r} list ({error})") from error
    if not isinstance(listed, list) or not all(isinstance(entry, str) for entry in listed):
        raise ValueError(f"{config}: {CONFIG_KEY!r} must be a list of folder paths")
    relative = [entry for entry in listed if not Path(entry).expanduser().is_absolute()]
    if relative:
        raise ValueError(f"{config}: read roots must be absolute paths, got {relative}")
    return [Path(entry).expanduser() for entry in listed]
