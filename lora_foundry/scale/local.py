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


def _serve(tasks: Any, channel: Any) -> None:
    """A worker process for the run: take units until told to stop; pass on each unit's messages,
    end it with its result or with the error it raised. One store of kept things for its life."""
    kept = new_kept()
    while True:
        task = tasks.get()
        if task is None:
            return
        number, unit = task
        send: Send = lambda message, n=number: channel.put((n, message))  # noqa: E731
        try:
            result = unit.work(unit.payload, send, kept)
        except Exception as error:  # reported to the driver, which raises naming the unit
            channel.put((number, ("failed", f"{type(error).__name__}: {error}")))
            continue
        channel.put((number, ("end", result)))


class LocalRunner:
    """``workers`` processes started once per run (each imports the engine once, whatever the
    number of units), fed units in order through one queue, at most ``2 * workers`` in flight;
    their messages come back through another. No manager process: plain pipes."""

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
        tasks, channel = context.Queue(), context.Queue()
        workers = [context.Process(target=_serve, args=(tasks, channel), daemon=True)
                   for _ in range(min(self.workers, len(units)))]
        for worker in workers:
            worker.start()
        try:
            _drain(units, tasks, channel, workers, deliver, idle)
            for _ in workers:
                tasks.put(None)
            for worker in workers:
                worker.join()
        finally:
            for worker in workers:  # on cancel or error: stop the other workers now
                if worker.is_alive():
                    worker.terminate()
                    worker.join()
            tasks.cancel_join_thread()  # units never handed out are dropped, not waited for


def _drain(units: list[Unit], tasks: Any, channel: Any, workers: list[Any], deliver: Deliver,
           idle: Callable[[], None] | None) -> None:
    """Hand out units (a bounded number in flight) and deliver messages until every unit ended;
    a failed unit, or a worker that died, raises naming the unit."""
    in_flight, handed, ended = 2 * len(workers), 0, 0
    while ended < len(units):
        while handed < len(units) and handed - ended < in_flight:
            tasks.put((handed, units[handed]))
            handed += 1
        try:
            number, message = channel.get(timeout=0.1)
        except queue_module.Empty:
            dead = [worker.exitcode for worker in workers if not worker.is_alive()]
            if dead:
                raise RuntimeError(f"a worker process died (exit code {dead[0]}) while running "
                                   f"{', '.join(unit.name for unit in units[ended:handed])}") from None
            if idle is not None:
                idle()
            continue
        if message[0] == "failed":
            raise RuntimeError(f"{units[number].name} failed in a worker: {message[1]}")
        deliver(number, message)
        ended += message[0] == "end"
