"""A workspace: a folder of files plus the manifest that says what they are.

Reading is free for anyone; writing happens inside a stage (``Workspace.stage``), which holds the
writer lock. See docs/ARCHITECTURE.md for the model: items, stages, stage keys, annotations.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import names
from ..paths import confined, safe_name
from . import manifest
from .files import writer_lock
from .items import Handle, Item

MANIFEST_NAME = "manifest.sqlite"
LOCK_NAME = ".writer.lock"
WORKSPACES_DIR = ("lora_foundry", "workspaces")


class WorkspaceError(ValueError):
    """A handle or stage that does not fit this workspace."""


def workspace_path(output_root: Path, name: str) -> Path:
    """``<output root>/lora_foundry/workspaces/<name>``, with ``name`` checked by ``safe_name``."""
    return confined(output_root, *WORKSPACES_DIR, safe_name(name, "workspace name"))


def stage_key(name: str, version: int, params: dict[str, Any], model: str, inputs: Sequence[str]) -> str:
    """The identity of a stage's result: same name, version, parameters, model and inputs."""
    payload = manifest.dumps(
        {"name": name, "version": version, "params": params, "model": model, "inputs": list(inputs)}
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Workspace:
    """An open workspace folder. Cheap to open; open one per node call."""

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self._conn = conn
        self._writing = 0  # stage runs of this object holding the writer lock

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writer lock. Re-entrant for this object, so one driver may keep several stage
        runs open at once (a parallel ingest commits the videos of many workers)."""
        if not self._writing:
            with writer_lock(self.root / LOCK_NAME):
                self._writing = 1
                try:
                    yield
                finally:
                    self._writing = 0
            return
        self._writing += 1
        try:
            yield
        finally:
            self._writing -= 1

    @classmethod
    def open(cls, root: Path) -> Workspace:
        root = Path(root).resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root, manifest.connect(root / MANIFEST_NAME))

    @classmethod
    def from_handle(cls, handle: Handle) -> Workspace:
        root = Path(handle.workspace)
        if not (root / MANIFEST_NAME).is_file():
            raise WorkspaceError(f"workspace {root} no longer exists (was it moved or deleted?)")
        return cls.open(root)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    # -- reading ---------------------------------------------------------------------------
    def handle(self, key: str, label: str = "") -> Handle:
        return Handle(workspace=str(self.root), stage_key=key, label=label)

    def check_handle(self, handle: Handle) -> None:
        if Path(handle.workspace).resolve() != self.root:
            raise WorkspaceError(f"{handle} belongs to another workspace than {self.root}")
        if self.stage_status(handle.stage_key) is None:
            raise WorkspaceError(f"{handle} names a stage this workspace does not have")

    def stage_status(self, key: str) -> str | None:
        row = self._conn.execute("SELECT status FROM stages WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row["status"])

    def stage_info(self, handle: Handle | str) -> dict[str, Any]:
        key = handle.stage_key if isinstance(handle, Handle) else handle
        row = self._conn.execute("SELECT info FROM stages WHERE key=?", (key,)).fetchone()
        return {} if row is None else self.stored_value(row["info"], "stages.info")

    def items(self, handle: Handle) -> list[Item]:
        """The items a stage produced or selected, in the stage's order."""
        self.check_handle(handle)
        rows = self._conn.execute(
            "SELECT i.* FROM stage_outputs o JOIN items i ON i.id = o.item_id "
            "WHERE o.stage_key=? ORDER BY o.major, o.minor",
            (handle.stage_key,),
        ).fetchall()
        return [self._item(row) for row in rows]

    def count(self, handle: Handle) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) AS n FROM stage_outputs WHERE stage_key=?", (handle.stage_key,)
        ).fetchone()
        return int(row["n"])

    def get_items(self, ids: Iterable[int]) -> dict[int, Item]:
        wanted = list(ids)
        found: dict[int, Item] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(f"SELECT * FROM items WHERE id IN ({marks})", chunk):
                found[int(row["id"])] = self._item(row)
        return found

    def lineage(self, key: str) -> list[str]:
        """``key`` and every stage it was computed from, nearest first (breadth first)."""
        order: list[str] = []
        frontier = [key]
        while frontier:
            next_frontier: list[str] = []
            for current in frontier:
                if current in order:
                    continue
                order.append(current)
                row = self._conn.execute("SELECT inputs FROM stages WHERE key=?", (current,)).fetchone()
                if row is not None:
                    next_frontier.extend(str(k) for k in self.stored_value(row["inputs"], "stages.inputs"))
            frontier = next_frontier
        return order

    def nearest_info(self, handle: Handle, field: str) -> dict[str, Any]:
        """The info of the nearest stage in ``handle``'s lineage that recorded ``field`` ({} if none):
        how a later stage finds what an earlier one (captions, embeddings) decided."""
        for key in self.lineage(handle.stage_key):
            info = self.stage_info(key)
            if field in info:
                return info
        return {}

    def tags(self, handle: Handle) -> dict[int, list[str]]:
        """``{item id: tags}`` visible from ``handle``: the ``tags`` union every tagging stage extends
        (see ``stages/tagging/tags.py``), which the caption builder reads."""
        return {item_id: list(value or []) for item_id, value in self.annotations(handle, names.TAGS).items()}

    def annotations(self, handle: Handle, name: str) -> dict[int, Any]:
        """``{item id: value}`` of annotation ``name`` from this stage or its ancestors.

        When several stages of the lineage annotated the same item, the nearest one wins, so a
        re-run of a later stage overrides an earlier stage's tags without erasing them.
        """
        lineage = self.lineage(handle.stage_key)
        rank = {key: position for position, key in enumerate(lineage)}
        values: dict[int, tuple[int, Any]] = {}
        for start in range(0, len(lineage), 500):
            chunk = lineage[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT stage_key, item_id, value FROM annotations WHERE name=? AND stage_key IN ({marks})",
                [name, *chunk],
            )
            for row in rows:
                item_id, distance = int(row["item_id"]), rank[row["stage_key"]]
                if item_id not in values or distance < values[item_id][0]:
                    values[item_id] = (distance, self.stored_value(row["value"], f"annotations.{name}"))
        return {item_id: value for item_id, (_, value) in values.items()}

    def path_of(self, relpath: object, field: str) -> Path:
        """The file a stored ``relpath`` names inside this workspace; a forged value (absolute,
        ``..``) is refused naming the manifest and ``field``."""
        return self.root / manifest.checked_relpath(relpath, f"{self._where()} {field}")

    def _where(self) -> str:
        return f"workspace {self.root.name!r} {MANIFEST_NAME}"

    def stored_value(self, text: object, field: str) -> Any:
        """A JSON value read back from the manifest (``manifest.stored_json``: forged values refused)."""
        return manifest.stored_json(text, f"{self._where()} {field}")

    def _item(self, row: sqlite3.Row) -> Item:
        path = self.path_of(row["relpath"], f"items.relpath of item {row['id']}")
        return Item(
            id=int(row["id"]),
            kind=row["kind"],
            path=path,
            relpath=row["relpath"],
            parent=row["parent"],
            source=row["source"],
            frame_index=row["frame_index"],
            time_s=row["time_s"],
            shot=row["shot"],
            width=int(row["width"]),
            height=int(row["height"]),
            meta=self.stored_value(row["meta"], f"items.meta of item {row['id']}"),
        )

    # -- writing ---------------------------------------------------------------------------
    def stage(
        self,
        name: str,
        version: int,
        params: dict[str, Any],
        inputs: Sequence[Handle] = (),
        model: str = "",
        label: str = "",
    ):
        """Open a stage run (a context manager): a cache hit, a resume, or a fresh start."""
        from .stage import StageRun

        for handle in inputs:
            self.check_handle(handle)
        key = stage_key(name, version, params, model, [h.stage_key for h in inputs])
        return StageRun(self, key, name, params, [h.stage_key for h in inputs], label or name)
