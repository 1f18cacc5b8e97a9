"""Finding LoRA files by the names stacks carry, and reading each file once.

Stack entries name LoRAs the way ComfyUI's ``loras`` combo does (``sub/name.safetensors``
relative to a ``models/loras`` folder); LoRA-Manager may pass an absolute path instead. Both are
accepted, but only inside the configured LoRA folders: a name from a shared workflow must not read
an arbitrary file. Loaded files are kept in a ``FileCache`` bounded by entry count and bytes and
keyed by (path, mtime, size), so a re-trained file is re-read and an unchanged one is not.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..paths import UnsafeNameError, confined

T = TypeVar("T")


class LoraNotFoundError(FileNotFoundError):
    """A stack names a LoRA that is in none of the LoRA folders."""


def resolve_lora(name: str, lora_dirs: Sequence[Path]) -> Path:
    """The existing file ``name`` refers to inside one of ``lora_dirs``."""
    if not lora_dirs:
        raise LoraNotFoundError(f"no LoRA folder is configured; put {name} in models/loras")
    candidate = Path(name.replace("\\", "/"))
    for folder in lora_dirs:
        folder = Path(folder).resolve()
        try:
            if candidate.is_absolute():
                path = confined(folder, os.path.relpath(candidate.resolve(), folder))
            else:
                path = confined(folder, *candidate.parts)
        except (UnsafeNameError, ValueError):
            continue
        if path.is_file():
            return path
    folders = ", ".join(str(d) for d in lora_dirs)
    raise LoraNotFoundError(f"LoRA {name!r} not found: put it in models/loras (searched {folders})")


def file_key(path: Path) -> tuple[str, int, int]:
    stat = os.stat(path)
    return str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size


class FileCache(Generic[T]):
    """LRU of ``loader(path)`` results keyed by (path, mtime, size), bounded by count and bytes."""

    def __init__(self, loader: Callable[[Path], T], max_entries: int = 8,
                 max_bytes: int | None = None) -> None:
        self._loader = loader
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, int, int], T] = OrderedDict()
        self.reads = 0

    def get(self, path: Path) -> T:
        key = file_key(path)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = self._loader(Path(key[0]))
        self.reads += 1
        self._entries[key] = value
        self._evict()
        return value

    def _evict(self) -> None:
        while len(self._entries) > self._max_entries or (
            self._max_bytes is not None and len(self._entries) > 1
            and sum(k[2] for k in self._entries) > self._max_bytes
        ):
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


def load_state_dict(path: Path) -> dict[str, Any]:
    """All tensors of a safetensors LoRA on the CPU."""
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")
