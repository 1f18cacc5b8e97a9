"""Atomic file writes and the one-writer lock.

A file is written to a temporary name in the same folder, flushed, then renamed over its final
name: a crash or cancel leaves either the old file or the new one, never half of one. Temporary
names start with ``.tmp-`` so a later run can sweep what a kill -9 left behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"


class WorkspaceBusyError(RuntimeError):
    """Another process is writing to this workspace."""


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Create ``path`` atomically by calling ``write(handle)`` on a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
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


def sweep_temporaries(folder: Path) -> int:
    """Delete temporary files a killed run left under ``folder``; returns how many."""
    removed = 0
    if not folder.is_dir():
        return 0
    for tmp in folder.rglob(f"{TMP_PREFIX}*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


@contextlib.contextmanager
def writer_lock(lock_path: Path) -> Iterator[None]:
    """Hold the workspace's writer lock; fail at once, naming the workspace, if it is taken.

    The operating system releases the lock when the holder dies, so a kill -9 never leaves a
    workspace locked.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+b")
    try:
        _lock(handle, lock_path)
        try:
            yield
        finally:
            _unlock(handle)
    finally:
        handle.close()


def _lock(handle: IO[bytes], lock_path: Path) -> None:
    try:
        import fcntl

        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise WorkspaceBusyError(
                f"workspace {lock_path.parent} is being written by another run; wait for it or "
                "use another workspace name"
            ) from error
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError as error:
            raise WorkspaceBusyError(f"workspace {lock_path.parent} is being written") from error


def _unlock(handle: IO[bytes]) -> None:
    try:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
