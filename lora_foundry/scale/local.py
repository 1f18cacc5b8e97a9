"""Units on this machine: in this process one after another (``InlineRunner``), or on every core
in worker processes with messages back through one queue (``LocalRunner``).

Every stage runs its units through one of these or the Ray runner (``runner_for``): there is one
implementation of each unit's work, wherever it runs (tests/test_code_rules.py holds it).
Processes, not threads: decoding, cut detection and JPEG encoding hold the GIL often enough that
threads would share one core. Workers are started with "spawn" (no fork of a process that may
hold threads or a GPU context). The driver's thread alone reads the queue and commits, so the
manifest keeps one writer.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .units import Deliver, Runner, Send, Unit, new_kept


def runner_for(runner: Runner | None, workers: int, units: int) -> Runner:
    """``runner`` (a Ray cluster) when given; else worker processes when more than one worker and
    unit; else this process."""
    if runner is not None:
        return runner
    if workers > 1 and units > 1:
        return LocalRunner(workers)
    return InlineRunner()


class InlineRunner:
    """Units one after another in this process; payloads are used as they are (not pickled), so
    a unit may carry a model this process already holds."""

    def check_shared(self, root: Path) -> None:
        """This process sees its own files: nothing to check."""

    def run(self, units: list[Unit], deliver: Deliver, idle: Callable[[], None] | None = None) -> None:
        """Each unit's messages are delivered as it sends them (a cancel raised there stops it);
        ``idle`` is called once before the first unit (the bar shows where a resumed run starts)."""
        kept = new_kept()
        if idle is not None and units:
            idle()
        for number, unit in enumerate(units):
            result = unit.work(unit.payload, lambda message, n=number: deliver(n, message), kept)
            deliver(number, ("end", result))


def _call(number: int, unit: Unit, channel: Any) -> None:
    """Run in a worker: do the unit, pass on its messages, end with its result."""
    send: Send = lambda message: channel.put((number, message))  # noqa: E731
    result = unit.work(unit.payload, send, new_kept())
    channel.put((number, ("end", result)))


class LocalRunner:
    """``workers`` processes; units are handed out in order, one at a time per worker."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def check_shared(self, root: Path) -> None:
        """Workers on this machine see its files: nothing to check."""

    def run(self, units: list[Unit], deliver: Deliver, idle: Callable[[], None] | None = None) -> None:
        """Run every unit; ``idle`` is called while no message comes (cancel raises from it)."""
        if not units:
            return
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            channel = manager.Queue()
            pool = context.Pool(min(self.workers, len(units)))
            try:
                _drain(channel, _Submitter(pool, channel, units, 2 * self.workers), deliver, idle)
                pool.close()
            finally:
                pool.terminate()  # on cancel or error: stop the other workers now
                pool.join()


class _Submitter:
    """Hands units to the pool a few at a time (``in_flight``), so the driver holds a bounded
    number of queued tasks and results however many units there are."""

    def __init__(self, pool: Any, channel: Any, units: list[Unit], in_flight: int) -> None:
        self.pool, self.channel, self.units, self.in_flight = pool, channel, units, in_flight
        self.running: dict[int, Any] = {}
        self.next = 0
        self.ended = 0

    def top_up(self) -> None:
        while self.next < len(self.units) and len(self.running) < self.in_flight:
            self.running[self.next] = self.pool.apply_async(_call, (self.next, self.units[self.next], self.channel))
            self.next += 1

    def end(self, number: int) -> None:
        self.running.pop(number, None)
        self.ended += 1
        self.top_up()

    @property
    def finished(self) -> bool:
        return self.ended == len(self.units)

    def raise_failures(self) -> None:
        for number, result in self.running.items():
            if result.ready() and not result.successful():
                try:
                    result.get()
                except Exception as error:
                    raise RuntimeError(f"{self.units[number].name} failed in a worker: {error}") from error


def _drain(channel: Any, submitter: _Submitter, deliver: Deliver, idle: Callable[[], None] | None) -> None:
    """Deliver messages until every unit has ended; a failed unit raises, naming it."""
    submitter.top_up()
    while not submitter.finished:
        try:
            number, message = channel.get(timeout=0.1)
        except queue_module.Empty:
            submitter.raise_failures()
            if idle is not None:
                idle()
            continue
        deliver(number, message)
        if message[0] == "end":
            submitter.end(number)
