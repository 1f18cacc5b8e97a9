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


class AtomicFile:
    """A temporary file beside ``path`` that becomes ``path`` only when finished: ``with
    AtomicFile(path) as temp`` for a file written in one block (on an error it is removed and ``path``
    is left as it was), or ``open()`` / ``commit()`` /
    ``discard()`` for one written over a long time by a writer that outlives a block (an MP4 clip
    open while its frames are decoded). The one place that fsyncs and renames a finished file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.temp: Path | None = None

    def open(self) -> Path:
        """Create the temporary file (empty, in ``path``'s folder, made if missing); returns its path."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=self.path.suffix, dir=self.path.parent)
        os.close(fd)
        self.temp = Path(name)
        return self.temp

    def commit(self) -> Path:
        """Flush the finished temporary file to disk, give it ``FILE_MODE`` and rename it over ``path``
        (the temporary file is removed if any of that fails)."""
        try:
            with open(self._opened(), "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(self._opened(), FILE_MODE)
            os.replace(self._opened(), self.path)
        except BaseException:
            self.discard()
            raise
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (an error or a cancel while writing); ``path`` is untouched."""
        if self.temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp)

    def _opened(self) -> Path:
        if self.temp is None:
            raise RuntimeError(f"the temporary file for {self.path} was never opened")
        return self.temp

    def __enter__(self) -> Path:
        return self.open()

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Create ``path`` atomically by calling ``write(handle)`` on a temporary file beside it."""
    with AtomicFile(path) as temp, open(temp, "wb") as handle:
        write(handle)
    return Path(path)


def atomic_link(source: Path, target: Path) -> Path:
    """Hard-link ``source`` to ``target`` atomically (copied, with ``FILE_MODE`` like every finished
    file, where a hard link cannot be made, e.g. across file systems); raises ``OSError`` and leaves
    no temporary file when neither works, or on a cancel midway."""
    # a name of its own, as AtomicFile's: two links to one target at once never share a temp file
    temporary = Path(target).with_name(f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}-{Path(target).name}")
    try:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
            os.chmod(temporary, FILE_MODE)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return Path(target)


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
