"""The one-writer lock, and sweeping the temporaries a killed run left (writes: ``fileio``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..fileio import TMP_PREFIX, atomic_write, atomic_write_bytes, atomic_write_text

__all__ = ["TMP_PREFIX", "WorkspaceBusyError", "atomic_write", "atomic_write_bytes", "atomic_write_text",
           "sweep_temporaries", "writer_lock"]


class WorkspaceBusyError(RuntimeError):
    """Another process is writing to this workspace."""


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
