"""What a runner runs: units of work, and the messages they send back to the driver."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..cache import BoundedCache

Deliver = Callable[[int, tuple[Any, ...]], None]
"""The driver's handler: ``deliver(unit_number, message)``; a unit ends with ("end", result)."""

Send = Callable[[tuple[Any, ...]], None]

Kept = BoundedCache
"""What one worker keeps open between its units (a model): ``kept.get(key, open)``. Each runner
gives a unit the store of the worker it runs on: one per Ray actor for the actor's life (so a
model opens once per slot, not per batch), one per run in this process."""


@dataclass(frozen=True)
class Unit:
    """``work(payload, send, kept)`` runs in a worker; ``resources`` is what it asks a Ray cluster
    for (``{"num_cpus": 1}`` for decoding, ``{"num_gpus": 1}`` for a model stage). ``keeps``: the
    unit opens something worth keeping (a model), so a Ray cluster runs it on an actor per slot."""

    name: str
    work: Callable[[Any, Send, Kept], Any]
    payload: Any
    resources: dict[str, float] = field(default_factory=lambda: {"num_cpus": 1})
    keeps: bool = False


class Runner(Protocol):
    def check_shared(self, root: Path) -> None:
        """Raise, before any unit runs, unless every worker sees the workspace folder ``root``."""

    def run(self, units: list[Unit], deliver: Deliver, idle: Callable[[], None] | None = None) -> None:
        """Run every unit; deliver each message on the calling thread; raise if a unit failed;
        call ``idle`` now and then while waiting (a cancel check may raise there)."""


def new_kept() -> Kept:
    """A worker's store: the last opened model only (a second one replaces it)."""
    return BoundedCache(1)


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class SentProgress:
    """A worker's ``Progress``: sends ("progress", done, total) at most every ``interval_s``."""

    def __init__(self, send: Send, interval_s: float = 0.25) -> None:
        self._send, self._interval_s, self._last = send, interval_s, 0.0

    def update(self, done: int, total: int, preview: Any = None) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= self._interval_s:
            self._last = now
            self._send(("progress", done, total))


class CombinedProgress:
    """One bar over many units: the sum of each unit's last reported (done, total)."""

    def __init__(self, progress: Any, totals: list[int]) -> None:
        self._progress = progress
        self._done = [0] * len(totals)
        self._totals = [max(1, total) for total in totals]

    def report(self, number: int, done: int, total: int) -> None:
        """Unit ``number`` is ``done`` of ``total`` of its own work."""
        self._done[number] = round(self._totals[number] * min(1.0, done / max(1, total)))
        if self._progress is not None:
            self._progress.update(sum(self._done), sum(self._totals))

    def finish(self, number: int) -> None:
        self.report(number, 1, 1)

    def done_before(self, number: int) -> None:
        """Unit ``number`` was done by an earlier run: counted as done, shown with the next update."""
        self._done[number] = self._totals[number]

    def refresh(self) -> None:
        """Show the bar again as it is: a ComfyUI bar checks for cancel here."""
        if self._progress is not None:
            self._progress.update(sum(self._done), sum(self._totals))
