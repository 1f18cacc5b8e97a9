"""The workspace manifest: one SQLite file in WAL mode, written in short transactions.

Why SQLite: a run that takes hours must survive a kill -9; SQLite commits atomically, WAL lets
readers (a preview, the CLI) look while the writer works, and it ships with Python.

What a manifest holds is untrusted (issue 23): workspaces live under ComfyUI's output folder, which
any client can download and re-upload (``POST /upload/image`` with ``type=output``). So a manifest
with triggers or views is refused when opened, every item path must be a plain relative path inside
the workspace (``checked_relpath``) and every stored JSON value is parsed by ``stored_json``, which
refuses deep nesting; each refusal names the file and the field.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ..bounded import parse_json
from ..choices import quoted
from ..paths import UnsafeNameError, relative_parts

SCHEMA_VERSION = 1


class ForgedManifestError(ValueError):
    """A manifest whose content the pack did not write (an item outside the workspace, code in it)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    relpath TEXT NOT NULL,
    parent INTEGER REFERENCES items(id),
    source TEXT,
    frame_index INTEGER,
    time_s REAL,
    shot INTEGER,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    stage_key TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS items_by_path ON items(relpath);
CREATE TABLE IF NOT EXISTS stages (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    params TEXT NOT NULL,
    inputs TEXT NOT NULL,
    status TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stage_outputs (
    stage_key TEXT NOT NULL,
    major INTEGER NOT NULL,
    minor INTEGER NOT NULL,
    item_id INTEGER NOT NULL REFERENCES items(id),
    PRIMARY KEY (stage_key, major, minor)
);
CREATE TABLE IF NOT EXISTS stage_units (
    stage_key TEXT NOT NULL,
    unit TEXT NOT NULL,
    PRIMARY KEY (stage_key, unit)
);
CREATE TABLE IF NOT EXISTS annotations (
    stage_key TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (stage_key, item_id, name)
);
CREATE INDEX IF NOT EXISTS annotations_by_name ON annotations(name, item_id);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating) the manifest with WAL, foreign keys and a busy timeout for readers."""
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA trusted_schema=OFF")
    _refuse_code(conn, path)
    conn.executescript(_SCHEMA)
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
    )
    return conn


def _refuse_code(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a manifest holding triggers or views: the pack writes none, and a trigger would run
    SQL of the uploader's choosing inside our writes."""
    found = conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')").fetchall()
    if found:
        conn.close()
        listed = ", ".join(f"{row['type']} {row['name']!r}" for row in found[:3])
        raise ForgedManifestError(f"{Path(path).name}: holds {listed}, which LoRA Foundry never writes; "
                                  "the workspace was altered, delete it and run again")


def checked_relpath(relpath: object, where: str) -> str:
    """``relpath`` (``stages/x/0001.png``, with ``/`` between its parts) when it is a plain relative
    path that stays inside the workspace by name (``paths.name_problem``, the one rule: no absolute
    path, drive, ``~``, ``..``, control character...). The pack never writes symlinks into a
    workspace and a client cannot upload one."""
    try:  # checked once: this runs for every item a stage reads
        return "/".join(relative_parts(relpath))  # type: ignore[arg-type]  # not text: refused there
    except UnsafeNameError:
        raise ForgedManifestError(f"{where}: {quoted(str(relpath))} is not a path inside the workspace; "
                                  "the workspace was altered, delete it and run again") from None


def stored_json(text: object, where: str) -> Any:
    """A JSON value read back from the manifest, refusing what the pack never writes (not JSON,
    nested deeper than ``bounded.MAX_DEPTH``) with ``ForgedManifestError`` naming ``where``."""
    try:
        return parse_json(text, where)
    except ValueError as error:
        raise ForgedManifestError(f"{error}; the workspace was altered, delete it and run again") from None


def dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, so equal values hash and compare equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__} in the manifest")


class Transaction:
    """``with Transaction(conn):`` runs BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
