"""The staging folder a dataset is assembled in, and cleaning up after writers that died.

A dataset is written into ``<datasets>/.tmp-<name>-XXXX`` and renamed into place in one step. A
kill -9 during the write used to leave that folder forever, as big as a partial dataset. Each
staging folder now records its writer (pid, host, start time) in ``WRITER_FILE``; the next writer
removes the folders of writers that are dead: same host and no such process, or a folder with no
record older than ``ORPHAN_AGE_S`` (killed between creating it and writing the record, or left by a
version without records). A live writer's folder, or one from another host sharing the disk, is
never touched.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)
Written = TypeVar("Written")

STAGING_PREFIX = ".tmp-"
WRITER_FILE = ".lora_foundry_writer.json"
ORPHAN_AGE_S = 3600.0


def make_staging(root: Path, name: str) -> Path:
    """A fresh staging folder for dataset ``name`` under ``root``, with its writer recorded."""
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{name}-", dir=root))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; a trainer may run as another user
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    (staging / WRITER_FILE).write_text(json.dumps(record), encoding="utf-8")
    return staging


def remove_stale_staging(root: Path) -> list[Path]:
    """Delete the staging folders under ``root`` whose writers are dead; returns them."""
    removed = []
    if not root.is_dir():
        return removed
    for folder in root.iterdir():
        if folder.name.startswith(STAGING_PREFIX) and folder.is_dir() and _writer_is_dead(folder):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                log.warning("removed %s, left by a dataset writer that died", folder)
                removed.append(folder)
    return removed


def publish(staging: Path, target: Path) -> bool:
    """Rename ``staging`` to ``target``; False (staging kept for the caller) when another writer
    published ``target`` first, any other failure raises."""
    try:
        os.replace(staging, target)
    except OSError:
        if target.is_dir():
            return False
        raise
    (target / WRITER_FILE).unlink(missing_ok=True)
    return True


def write_staged(root: Path, target: Path, write: Callable[[Path], Written]) -> tuple[Written, bool]:
    """``write(staging)`` in a fresh staging folder (dead writers' folders removed first), then the
    folder renamed to ``target``: (what ``write`` returned, True), or False when another writer of
    the same name published ``target`` first. The staging folder never outlives the call: a raise
    (a cancel included) or a lost race removes it."""
    remove_stale_staging(root)
    staging = make_staging(root, target.name)
    try:
        written = write(staging)
        published = publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not published:
        shutil.rmtree(staging, ignore_errors=True)
    return written, published


def _writer_is_dead(folder: Path) -> bool:
    try:
        record = json.loads((folder / WRITER_FILE).read_text("utf-8"))
        pid, host = int(record["pid"]), str(record["host"])
    except FileNotFoundError:
        return time.time() - folder.stat().st_mtime > ORPHAN_AGE_S
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable record: leave it alone rather than guess
    return host == socket.gethostname() and not _alive(pid)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
