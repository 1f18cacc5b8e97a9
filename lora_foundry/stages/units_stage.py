"""The driver's side of a stage's units, one owner for every stage that has them (ingest, tracking,
embedding).

A unit's work runs wherever its runner puts it (this process, worker processes, a Ray cluster); what
it sends back is handled here, in the driver: progress moves one bar over all the run's units, a
record is committed on the unit's stage run (``remote.apply``, which skips a unit already recorded),
and units an earlier run finished count as done on the bar without running again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..progress import Progress
from ..scale.units import CombinedProgress, Runner, Unit
from ..workspace import remote


@dataclass(frozen=True)
class Planned:
    """One unit of a run: the stage run that commits its records, its share of the bar, its work
    (None: an earlier run finished it), and what the driver does with its result when it ends."""

    st: Any
    total: int
    work: Unit | None
    on_end: Callable[[Any], None] | None = None


def folder_job(st: Any) -> remote.StageJob:
    """What each unit of ``st`` is given: where the stage writes (a unit carries what it needs, not
    the stage's info or the list of finished units)."""
    where = remote.job_for(st)
    return remote.StageJob(where.root, where.stage_dir)


def units_of(st: Any, names: Sequence[str], totals: Sequence[int], make: Callable[[int], Unit]) -> list[Planned]:
    """The units of one stage run: ``make(number)`` for each name ``st`` has not recorded yet, the
    others planned as done."""
    return [Planned(st, total, None if st.is_done(name) else make(number))
            for number, (name, total) in enumerate(zip(names, totals, strict=True))]


def run_planned(runner: Runner, planned: Sequence[Planned], progress: Progress | None) -> None:
    """Run every unit that has work on ``runner``, committing what each sends (see the module docstring)."""
    bar = CombinedProgress(progress, [each.total for each in planned])
    todo = []
    for number, each in enumerate(planned):
        if each.work is None:
            bar.done_before(number)
        else:
            todo.append(number)

    def deliver(position: int, message: tuple[Any, ...]) -> None:
        number = todo[position]
        if message[0] == "progress":
            bar.report(number, message[1], message[2])
        elif message[0] == "end":
            if planned[number].on_end is not None:
                planned[number].on_end(message[1])
            bar.finish(number)
        else:
            remote.apply(planned[number].st, message)

    runner.run([planned[number].work for number in todo], deliver, bar.refresh)
