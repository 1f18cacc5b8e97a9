"""LoRA files: finding them by the names stacks carry, reading each once, and writing them.

Stack entries name LoRAs the way ComfyUI's ``loras`` combo does (``sub/name.safetensors``
relative to a ``models/loras`` folder); LoRA-Manager may pass an absolute path instead. Both are
accepted, but only inside the configured LoRA folders: a name from a shared workflow must not read
an arbitrary file. Loaded files are kept in a ``FileCache``: the one ``BoundedCache`` keyed by
``file_key`` (path, mtime, size), so a re-trained file is re-read and an unchanged one is not, and
bounded by entry count and by the files' bytes on disk. Every LoRA this pack writes (merges, LECO
checkpoints and results, synthetic test LoRAs) goes through ``write_lora``: kohya's layout, weights in
the chosen precision, scalars in fp32, written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..cache import BoundedCache, file_key
from ..choices import one_of
from ..fileio import atomic_write_bytes
from ..kohya.publish import refuse_published
from ..models.weights_file import load_safetensors
from ..paths import UnsafeNameError, confined, inside_by_name, safe_name
from .sshs import sshs_hashes

T = TypeVar("T")
SAVE_DTYPES = ("fp16", "fp32", "bf16")


class LoraNotFoundError(FileNotFoundError):
    """A stack names a LoRA that is in none of the LoRA folders."""


def resolve_lora(name: str, lora_dirs: Sequence[Path]) -> Path:
    """The existing file ``name`` refers to inside one of ``lora_dirs``."""
    if not lora_dirs:
        raise LoraNotFoundError(f"no LoRA folder is configured; put {name} in models/loras")
    candidate = Path(name.replace("\\", "/"))
    for folder in lora_dirs:
        folder = Path(os.path.abspath(folder))
        try:  # by name: a symlink the user placed in models/loras (a shared store) is followed
            if candidate.is_absolute():
                path = inside_by_name(folder, os.path.relpath(os.path.normpath(candidate), folder))
            else:
                path = inside_by_name(folder, *candidate.parts)
        except (UnsafeNameError, ValueError):
            continue
        if path.is_file():
            return path
    folders = ", ".join(str(d) for d in lora_dirs)
    raise LoraNotFoundError(f"LoRA {name!r} not found: put it in models/loras (searched {folders})")


def resolve_loras(names: Sequence[str], lora_dirs: Sequence[Path]) -> list[Path]:
    """``resolve_lora`` for each name; when some are missing, one error listing all of them (a
    user fixing a shared stack should not discover them one queue at a time)."""
    found, missing = [], []
    for name in names:
        try:
            found.append(resolve_lora(name, lora_dirs))
        except LoraNotFoundError:
            missing.append(name)
    if missing:
        folders = ", ".join(str(d) for d in lora_dirs) or "(none configured)"
        raise LoraNotFoundError(f"{len(missing)} LoRA file(s) not found: {', '.join(repr(m) for m in missing)}; "
                                f"put them in models/loras (searched {folders})")
    return found


def _file_bytes(key: Any, value: Any) -> int:
    """A cached file's weight against the byte bound: its size on disk (``file_key``'s third part)."""
    return int(key[2])


class FileCache(Generic[T]):
    """``loader(path)`` results in a ``BoundedCache`` keyed by ``file_key``, bounded by count and by
    the files' total size; ``reads`` counts the files really read (cache misses)."""

    def __init__(self, loader: Callable[[Path], T], max_entries: int = 8,
                 max_bytes: int | None = None) -> None:
        self._loader = loader
        self._cache: BoundedCache[T] = BoundedCache(max_entries, max_bytes, _file_bytes)

    def get(self, path: str | os.PathLike[str]) -> T:
        key = file_key(path)
        return self._cache.get(key, lambda: self._loader(Path(key[0])))

    @property
    def reads(self) -> int:
        return self._cache.loads

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()


def load_state_dict(path: Path) -> dict[str, Any]:
    """All tensors of a safetensors LoRA on the CPU."""
    return load_safetensors(path)


def lora_stem(name: str) -> str:
    """A LoRA name from a workflow as a file stem: sanitised, without ``.safetensors``."""
    stem = safe_name(name, "LoRA name")
    return stem[: -len(".safetensors")] if stem.endswith(".safetensors") else stem


def lora_path(folder: Path, name: str) -> Path:
    """``<folder>/<name>.safetensors``, confined to ``folder``."""
    return confined(Path(folder), lora_stem(name) + ".safetensors")


def lora_bytes(state: dict[str, Any], metadata: dict[str, str], dtype: str = "fp16") -> bytes:
    """A safetensors file of ``state``: ``*.weight`` tensors in ``dtype``, alphas and scalars in fp32
    (kohya's layout: an fp16 alpha would round the scale ComfyUI applies)."""
    import torch
    from safetensors.torch import save

    one_of(dtype, SAVE_DTYPES, "dtype")
    torch_dtype = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    tensors = {k: (v.to(torch_dtype) if k.endswith(".weight") else v.float()).contiguous() for k, v in state.items()}
    hashes = sshs_hashes(save(tensors, metadata={k: v for k, v in metadata.items() if k.startswith("ss_")}))
    return save(tensors, metadata={**metadata, **hashes})  # the sshs_* keys sd-scripts adds (lora/sshs.py)


def write_lora(path: Path, state: dict[str, Any], metadata: dict[str, str], dtype: str = "fp16",
               overwrite: bool = False) -> Path:
    """Write a LoRA file atomically (a reader never sees half of it); never replace one unless asked:
    a taken name is refused as every trainer refuses one (``kohya.publish``: merges and the built-in
    LECO trainer publish into the loras folder too)."""
    path = Path(path)
    if not overwrite:
        refuse_published(path, "overwrite")
    data = lora_bytes(state, metadata, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, data)
