"""Reading weight files so that a broken or hostile one fails with its name and what is wrong.

Users download weights from many places; some ``.safetensors`` are really renamed pickles, some
downloads stop half-way. The libraries' own errors name neither the file nor the fix (safetensors:
"HeaderTooLarge"; torch even suggests ``weights_only=False``, which would run the pickle's code).
Every weight file the engine reads goes through here: ``check_safetensors`` looks at the header
before the library does, and ``load_safetensors`` / ``open_safetensors`` / ``torch_load_weights``
turn the libraries' errors into ``ModelFormatError`` naming the file. Nothing is ever unpickled
beyond tensors (``weights_only=True``).
"""

from __future__ import annotations

import json
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..fileio import announce_read
from .registry import ModelFormatError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
_PICKLE_SIGNS = {b"PK\x03\x04": "a PyTorch checkpoint (zip of pickles)", b"\x80": "a Python pickle"}


def _what_it_is(head: bytes) -> str | None:
    for sign, what in _PICKLE_SIGNS.items():
        if head.startswith(sign):
            return what
    return None


def check_safetensors(path: Path | str) -> None:
    """Raise ``ModelFormatError`` naming ``path`` unless it starts like a complete safetensors file."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as stream:
        head = stream.read(9)
        # A safetensors header's length is little-endian, so a real file may start with 0x80 (a header of
        # 0x..80 bytes) like a pickle: it is a safetensors file when its JSON header opens right after.
        looks_safetensors = len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= size - 8
        pickled = None if looks_safetensors else _what_it_is(head)
        if pickled:
            raise ModelFormatError(
                f"{path}: not a safetensors file but {pickled} renamed to .safetensors; pickles are never "
                "loaded (they can run code): download the real .safetensors file")
        if len(head) < 9:
            raise ModelFormatError(f"{path}: empty or truncated ({size} bytes), not a safetensors file")
        length = struct.unpack("<Q", head[:8])[0]
        if length < 2 or length > MAX_HEADER_BYTES or length > size - 8:
            raise ModelFormatError(f"{path}: corrupt safetensors header (says {length} bytes, the file has "
                                   f"{size}); the download may be incomplete or the file is not safetensors")
        try:
            header = json.loads(head[8:] + stream.read(length - 1))
        except ValueError as error:
            raise ModelFormatError(f"{path}: corrupt safetensors header (not JSON: {error})") from error
    _check_offsets(path, header, size - 8 - length)


def _check_offsets(path: Path, header: Any, data_bytes: int) -> None:
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path}: corrupt safetensors header (not a JSON object)")
    ends = [entry.get("data_offsets", [0, 0])[1] for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict)]
    if ends and max(ends) > data_bytes:
        raise ModelFormatError(f"{path}: truncated ({data_bytes} bytes of tensor data, the header needs "
                               f"{max(ends)}); download it again")


def load_safetensors(path: Path | str, device: str = "cpu") -> dict[str, Any]:
    """All tensors of a safetensors file, or ``ModelFormatError`` naming it."""
    check_safetensors(path)
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except Exception as error:  # safetensors raises its own SafetensorError and others
        raise ModelFormatError(f"{path}: unreadable safetensors file ({error})") from error


@contextmanager
def open_safetensors(path: Path | str, framework: str = "numpy") -> Iterator[Any]:
    """``safetensors.safe_open`` after the header check; errors name the file."""
    check_safetensors(path)
    from safetensors import safe_open

    try:
        announce_read(path)
        handle = safe_open(str(path), framework=framework)
    except Exception as error:
        raise ModelFormatError(f"{path}: unreadable safetensors file ({error})") from error
    with handle as opened:
        yield opened


def torch_load_weights(path: Path | str) -> Any:
    """``torch.load(weights_only=True)`` of a ``.pt``/``.pth``; a pickle with anything but tensors,
    or a broken file, gives ``ModelFormatError`` naming the file (and never the advice to unpickle)."""
    import pickle

    import torch

    path = Path(path)
    if path.stat().st_size == 0:
        raise ModelFormatError(f"{path}: empty file (0 bytes); download it again")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelFormatError(
            f"{path}: holds Python objects besides tensors, which could run code when loaded, so it is "
            "refused; use a release of these weights as plain tensors (.safetensors or a state dict)") from error
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        first = type(error).__name__ if "weights_only" in first else first
        raise ModelFormatError(f"{path}: not a readable PyTorch weights file (corrupt or truncated: "
                               f"{first})") from error
