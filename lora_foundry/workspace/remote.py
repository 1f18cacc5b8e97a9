"""The writing side of a stage run, for a worker process or a Ray task; the driver alone commits.

A worker sees the workspace folder (it writes its files there atomically, under the names a local
run uses) but never the manifest: each record (a finished unit, stage info) becomes a message the
driver applies to its own ``StageRun`` with ``apply``. So resume, cache keys and byte-identical
results hold as in a local run, and a unit redone after a lost worker is committed once: the
driver skips a unit it has already recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..fileio import atomic_write
from ..paths import confined
from ..progress import Progress, ensure_progress
from .items import NewItem

Message = tuple[Any, ...]
"""("emit", unit, order, outputs, annotations) or ("info", {key: value})."""


@dataclass(frozen=True)
class StageJob:
    """What a worker needs to write one stage's files: where, what is done, what is known."""

    root: str
    stage_dir: str
    info: dict[str, Any] = field(default_factory=dict)
    done_units: frozenset[str] = frozenset()


def job_for(st: Any) -> StageJob:
    """The job of an entered ``StageRun`` (its folder, info and finished units)."""
    return StageJob(str(st.ws.root), st.dir.relative_to(st.ws.root).as_posix(), dict(st.info),
                    frozenset(st.done_units))


class RemoteStage:
    """Stands in for a ``StageRun`` in a worker: same writing methods, records sent as messages."""

    def __init__(self, job: StageJob, send: Callable[[Message], None]) -> None:
        self.root = Path(job.root)
        self.dir = confined(self.root, job.stage_dir)
        self._info = dict(job.info)
        self._done_units = set(job.done_units)
        self._send = send
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def is_done(self, unit: str) -> bool:
        return unit in self._done_units

    def pending_units(self, units: Sequence[str], progress: Progress | None = None) -> Iterator[tuple[int, str]]:
        """Yield ``(position, unit)`` for units not yet done, as ``StageRun.pending_units`` does."""
        report = ensure_progress(progress)
        done = sum(1 for unit in units if unit in self._done_units)
        report.update(done, len(units))
        for position, unit in enumerate(units):
            if unit in self._done_units:
                continue
            yield position, unit
            done += unit in self._done_units
            report.update(done, len(units))

    def path_for(self, name: str) -> Path:
        return confined(self.dir, name)

    def relpath(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def write_file(self, name: str, write: Callable[[IO[bytes]], Any]) -> str:
        return self.relpath(atomic_write(self.path_for(name), write))

    def write_image(self, pixels: np.ndarray, name: str, **save_options: Any) -> str:
        from ..media.images import save_image

        path = self.path_for(name)
        save_image(pixels, path, **save_options)
        return self.relpath(path)

    def write_array(self, array: np.ndarray, name: str) -> str:
        return self.write_file(name, lambda handle: np.save(handle, array, allow_pickle=False))

    def emit(self, unit: str, order: int, outputs: Sequence[NewItem | int] = (),
             annotations: dict[int, dict[str, Any]] | None = None) -> None:
        self._send(("emit", unit, order, list(outputs), annotations or {}))
        self._done_units.add(unit)

    def set_info(self, **info: Any) -> None:
        self._info.update(info)
        self._send(("info", info))


def apply(st: Any, message: Message) -> bool:
    """Commit one worker message on the driver's ``StageRun``; False for a unit already recorded."""
    if message[0] == "info":
        st.set_info(**message[1])
        return True
    if message[0] != "emit":
        raise ValueError(f"unknown worker message {message[0]!r}")
    _, unit, order, outputs, annotations = message
    if st.is_done(unit):
        return False
    st.emit(unit, order, outputs, annotations)
    return True
