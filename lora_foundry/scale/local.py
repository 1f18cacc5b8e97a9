"""Units on every core of this machine: worker processes, messages back through one queue.

Processes, not threads: decoding, cut detection and JPEG encoding hold the GIL often enough that
threads would share one core. Workers are started with "spawn" (no fork of a process that may
hold threads or a GPU context). The driver's thread alone reads the queue and commits, so the
manifest keeps one writer.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from pathlib import Path
from typing import Any

from .units import Deliver, Send, Unit


def _call(number: int, unit: Unit, channel: Any) -> None:
    """Run in a worker: do the unit, pass on its messages, end with its result."""
    send: Send = lambda message: channel.put((number, message))  # noqa: E731
    result = unit.work(unit.payload, send)
    channel.put((number, ("end", result)))


class LocalRunner:
    """``workers`` processes; units are handed out in order, one at a time per worker."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def check_shared(self, root: Path) -> None:
        """Workers on this machine see its files: nothing to check."""

    def run(self, units: list[Unit], deliver: Deliver) -> None:
        if not units:
            return
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            channel = manager.Queue()
            pool = context.Pool(min(self.workers, len(units)))
            try:
                pending = [pool.apply_async(_call, (number, unit, channel)) for number, unit in enumerate(units)]
                _drain(channel, pending, units, deliver)
                pool.close()
            finally:
                pool.terminate()  # on cancel or error: stop the other workers now
                pool.join()


def _drain(channel: Any, pending: list[Any], units: list[Unit], deliver: Deliver) -> None:
    """Deliver messages until every unit has ended; a failed unit raises, naming it."""
    ended: set[int] = set()
    while len(ended) < len(units):
        try:
            number, message = channel.get(timeout=0.1)
        except queue_module.Empty:
            _raise_failures(pending, units)
            continue
        if message[0] == "end":
            ended.add(number)
        deliver(number, message)


def _raise_failures(pending: list[Any], units: list[Unit]) -> None:
    for number, result in enumerate(pending):
        if result.ready() and not result.successful():
            try:
                result.get()
            except Exception as error:
                raise RuntimeError(f"{units[number].name} failed in a worker: {error}") from error
