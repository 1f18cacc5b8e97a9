"""The writing side of a stage run, for a worker process or a Ray task; the driver alone commits.

A worker sees the workspace folder (it writes its files there atomically, under the names a local
run uses) but never the manifest: each record (a finished unit, stage info) becomes a message the
driver applies to its own ``StageRun`` with ``apply``. So resume, cache keys and byte-identical
results hold as in a local run, and a unit redone after a lost worker is committed once: the
driver skips a unit it has already recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..paths import confined
from .items import NewItem
from .stage import StageFolder

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


class RemoteStage(StageFolder):
    """Stands in for a ``StageRun`` in a worker: same writing methods, records sent as messages."""

    def __init__(self, job: StageJob, send: Callable[[Message], None]) -> None:
        root = Path(job.root)
        super().__init__(root, confined(root, job.stage_dir), set(job.done_units))
        self._info = dict(job.info)
        self._send = send
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def info(self) -> dict[str, Any]:
        return dict(self._info)

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
