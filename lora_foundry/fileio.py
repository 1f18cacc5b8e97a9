"""Atomic file writes, shared by every stage that writes a file users keep.

A file is written to a temporary name in the same folder, flushed, then renamed over its final
name: a crash or cancel leaves the old file or the new one, never half of one. Temporary names
start with ``.tmp-`` so a later run can sweep what a kill -9 left behind. Files get mode 0644
(``mkstemp`` alone would leave them readable by their owner only, and a trainer or web server
running as another user could not read the dataset).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"
FILE_MODE = 0o644


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Create ``path`` atomically by calling ``write(handle)`` on a temporary file beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_copy(source: Path, destination: Path) -> Path:
    """Copy ``source`` to ``destination`` atomically (large files are streamed, not read whole)."""
    with open(source, "rb") as reader:
        return atomic_write(destination, lambda handle: shutil.copyfileobj(reader, handle, 1 << 20))


READ_EVENT = "lora_foundry.read"


def announce_read(path: str | os.PathLike[str]) -> None:
    """Raise the ``lora_foundry.read`` audit event for a file a C library is about to open (PyAV,
    onnxruntime, TorchScript, safetensors open files where Python's own ``open`` audit event does
    not see them), so an audit hook (tests/hostile/oracle.py) sees every file the pack reads."""
    sys.audit(READ_EVENT, os.fspath(path))
