"""One run of one stage: cache hit, resume after a crash, or a fresh start.

A stage's work is split into *units* (usually one input item each). Each unit's outputs, its
annotations and the mark "unit done" are committed in one transaction, after the unit's files were
written atomically. So a kill -9 at any instant loses at most the unit in flight, and the next run
with the same key skips every committed unit. Output files are named deterministically, so the
resumed result is the same, file for file and byte for byte, as an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..paths import confined
from ..progress import Progress, ensure_progress
from . import manifest
from .files import atomic_write, sweep_temporaries
from .items import Handle, Item, NewItem

STAGES_DIR = "stages"


class StageFolder:
    """What a stage run and a worker's ``remote.RemoteStage`` share: which units are done, and the
    stage's folder, where files are written atomically under names confined to it (paths come back
    relative to the workspace root). One class, so a local run and a worker write the same bytes."""

    def __init__(self, root: Path, folder: Path, done_units: set[str]) -> None:
        self.root = root
        self.dir = folder
        self._done_units = done_units

    # -- units -----------------------------------------------------------------------------
    def is_done(self, unit: str) -> bool:
        return unit in self._done_units

    def pending_units(self, units: Sequence[str], progress: Progress | None = None) -> Iterator[tuple[int, str]]:
        """Yield ``(position, unit)`` for units not yet done, reporting progress over all of them."""
        report = ensure_progress(progress)
        total = len(units)
        done = sum(1 for unit in units if unit in self._done_units)
        report.update(done, total)
        for position, unit in enumerate(units):
            if unit in self._done_units:
                continue
            yield position, unit
            if unit in self._done_units:
                done += 1
            report.update(done, total)

    # -- files -----------------------------------------------------------------------------
    def path_for(self, name: str) -> Path:
        return confined(self.dir, name)

    def relpath(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def write_file(self, name: str, write: Callable[[IO[bytes]], Any]) -> str:
        """Write ``name`` in this stage's folder atomically; returns its workspace-relative path."""
        return self.relpath(atomic_write(self.path_for(name), write))

    def write_image(self, pixels: np.ndarray, name: str, **save_options: Any) -> str:
        """Save an RGB/RGBA array (format from the suffix) atomically; returns its relative path."""
        from ..media.images import save_image

        path = self.path_for(name)
        save_image(pixels, path, **save_options)
        return self.relpath(path)

    def write_array(self, array: np.ndarray, name: str) -> str:
        """Save a numpy array (.npy, never pickled objects) atomically."""
        return self.write_file(name, lambda handle: np.save(handle, array, allow_pickle=False))


class StageRun(StageFolder):
    """Created by ``Workspace.stage``; use as ``with ws.stage(...) as st:``."""

    def __init__(self, ws: Any, key: str, name: str, params: dict[str, Any], inputs: list[str], label: str):
        self.ws = ws
        self.key = key
        self.name = name
        self.label = label
        self._params = params
        self._inputs = inputs
        self._lock: Any = None
        super().__init__(ws.root, confined(ws.root, STAGES_DIR, f"{name}-{key[:12]}"), set())

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> StageRun:
        status = self.ws.stage_status(self.key)
        if status == "complete":
            self._load_done_units()
            return self
        self._lock = self.ws.writing()
        self._lock.__enter__()
        try:
            self._begin(status)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def _begin(self, status: str | None) -> None:
        conn = self.ws.connection
        if status is None:
            with manifest.Transaction(conn):
                conn.execute(
                    "INSERT INTO stages(key, name, params, inputs, status, created) VALUES (?,?,?,?,?,?)",
                    (self.key, self.name, manifest.dumps(self._params), json.dumps(self._inputs),
                     "running", time.time()),
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(self.dir)
        self._load_done_units()

    def _load_done_units(self) -> None:
        rows = self.ws.connection.execute("SELECT unit FROM stage_units WHERE stage_key=?", (self.key,))
        self._done_units = {row["unit"] for row in rows}

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._lock is None:
            return
        try:
            if exc_type is None:
                conn = self.ws.connection
                with manifest.Transaction(conn):
                    conn.execute("UPDATE stages SET status='complete' WHERE key=?", (self.key,))
        finally:
            self._lock.__exit__(exc_type, exc, tb)
            self._lock = None

    @property
    def complete(self) -> bool:
        """True when this exact stage already finished: the caller has nothing to do."""
        return self.ws.stage_status(self.key) == "complete"

    @property
    def handle(self) -> Handle:
        return self.ws.handle(self.key, self.label)

    @property
    def resumed_units(self) -> int:
        """How many units an earlier, interrupted run of this stage had already finished."""
        return len(self._done_units)

    @property
    def done_units(self) -> frozenset[str]:
        """The units recorded so far (a worker's ``remote.StageJob`` skips them)."""
        return frozenset(self._done_units)

    def pending(self, items: Sequence[Item], progress: Progress | None = None) -> Iterator[tuple[int, Item]]:
        """Like ``pending_units`` with one unit per input item (unit = the item id)."""
        by_unit = {str(item.id): item for item in items}
        for position, unit in self.pending_units(list(by_unit), progress):
            yield position, by_unit[unit]

    # -- recording -------------------------------------------------------------------------
    def emit(
        self,
        unit: str,
        order: int,
        outputs: Sequence[NewItem | int] = (),
        annotations: dict[int, dict[str, Any]] | None = None,
    ) -> list[int]:
        """Record one finished unit in one transaction; returns the output item ids."""
        if self._lock is None:
            raise RuntimeError(f"stage {self.name} is complete or not entered: nothing may be recorded")
        conn = self.ws.connection
        with manifest.Transaction(conn):
            ids = self._record_outputs(conn, order, outputs)
            self._record_annotations(conn, annotations or {})
            conn.execute("INSERT OR IGNORE INTO stage_units(stage_key, unit) VALUES (?,?)", (self.key, unit))
        self._done_units.add(unit)
        return ids

    def emit_all(
        self,
        outputs: Sequence[NewItem | int],
        annotations: dict[int, dict[str, Any]] | None = None,
    ) -> list[int]:
        """Record a whole-set stage's result (clustering, a filter) as its single unit."""
        return self.emit("all", 0, outputs, annotations)

    def set_info(self, **info: Any) -> None:
        """Merge stage-level facts (a sampling plan, a filter report) into the stage's info."""
        conn = self.ws.connection
        with manifest.Transaction(conn):
            row = conn.execute("SELECT info FROM stages WHERE key=?", (self.key,)).fetchone()
            merged = {**self.ws.stored_value(row["info"], "stages.info"), **info}
            conn.execute("UPDATE stages SET info=? WHERE key=?", (manifest.dumps(merged), self.key))

    @property
    def info(self) -> dict[str, Any]:
        return self.ws.stage_info(self.key)

    def _record_outputs(self, conn: Any, order: int, outputs: Sequence[NewItem | int]) -> list[int]:
        ids: list[int] = []
        for minor, output in enumerate(outputs):
            item_id = output if isinstance(output, int) else self._insert_item(conn, output)
            conn.execute(
                "INSERT OR REPLACE INTO stage_outputs(stage_key, major, minor, item_id) VALUES (?,?,?,?)",
                (self.key, order, minor, item_id),
            )
            ids.append(item_id)
        return ids

    def _insert_item(self, conn: Any, new: NewItem) -> int:
        cursor = conn.execute(
            "INSERT INTO items(kind, relpath, parent, source, frame_index, time_s, shot, width, height, meta,"
            " stage_key) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (new.kind, new.relpath, new.parent, new.source, new.frame_index, new.time_s, new.shot,
             new.width, new.height, manifest.dumps(new.meta), self.key),
        )
        item_id = int(cursor.lastrowid)
        for name, value in new.annotations.items():
            self._annotate(conn, item_id, name, value)
        return item_id

    def _record_annotations(self, conn: Any, annotations: dict[int, dict[str, Any]]) -> None:
        for item_id, values in annotations.items():
            for name, value in values.items():
                self._annotate(conn, item_id, name, value)

    def _annotate(self, conn: Any, item_id: int, name: str, value: Any) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO annotations(stage_key, item_id, name, value) VALUES (?,?,?,?)",
            (self.key, item_id, name, manifest.dumps(value)),
        )
