"""The workspace manifest: one SQLite file in WAL mode, written in short transactions.

Why SQLite: a run that takes hours must survive a kill -9; SQLite commits atomically, WAL lets
readers (a preview, the CLI) look while the writer works, and it ships with Python.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

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
    conn.executescript(_SCHEMA)
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
    )
    return conn


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
