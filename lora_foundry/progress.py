"""Progress and cancel, as the engine sees them.

The engine never imports ComfyUI, yet every long loop must move ComfyUI's progress bar and stop
promptly when the user cancels. So engine functions take a ``Progress`` object and call
``progress.update(done, total)`` once per unit of work; the ComfyUI adapter in ``nodes/_comfy.py``
forwards to ``comfy.utils.ProgressBar`` (which raises on interrupt), the CLI prints, tests record.

Whatever raises out of ``update`` (``Cancelled`` here, ComfyUI's own interrupt exception in a
server) must leave nothing half-written: engine code writes files atomically and commits manifest
rows in transactions, so an exception at any ``update`` call is always safe.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol


class Cancelled(Exception):
    """The user asked the work to stop; everything finished so far is kept."""


class Progress(Protocol):
    def update(self, done: int, total: int, preview: Any = None) -> None:
        """Report ``done`` of ``total`` units; may raise to cancel the work."""


class NullProgress:
    """Progress that goes nowhere: the default when a caller does not care."""

    def update(self, done: int, total: int, preview: Any = None) -> None:
        return None


class CallbackProgress:
    """Progress that calls ``callback(done, total)``; raises ``Cancelled`` when ``should_stop()``."""

    def __init__(
        self,
        callback: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self._callback = callback
        self._should_stop = should_stop

    def update(self, done: int, total: int, preview: Any = None) -> None:
        if self._should_stop is not None and self._should_stop():
            raise Cancelled(f"cancelled at {done}/{total}")
        if self._callback is not None:
            self._callback(done, total)


class PrintProgress:
    """Progress for the command line: one line, rewritten at most every ``interval_s`` seconds."""

    def __init__(self, label: str, interval_s: float = 0.5, stream: Any = None) -> None:
        self._label = label
        self._interval_s = interval_s
        self._stream = stream or sys.stderr
        self._last = 0.0
        self._shown: tuple[int, int] | None = None

    def update(self, done: int, total: int, preview: Any = None) -> None:
        now = time.monotonic()
        if (done, total) == self._shown or (done < total and now - self._last < self._interval_s):
            return
        self._last, self._shown = now, (done, total)
        end = "\n" if done >= total else "\r"
        print(f"{self._label}: {done}/{total}", end=end, file=self._stream, flush=True)


class StepClock:
    """The pace of a training run measured from its own steps, and the time left at that pace.

    A first-time user on a CPU or a small GPU cannot guess whether 500 steps take minutes or hours;
    the training nodes show this estimate on their loss chart and in the server log. The clock starts
    at the first finished step, so model loading and the first step's warm-up do not skew the pace.
    """

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._total, self._clock = total, clock
        self._first: tuple[int, float] | None = None

    def tick(self, step: int) -> tuple[float | None, float | None]:
        """Steps per second and seconds left once ``step`` finished (None until two steps are timed)."""
        now = self._clock()
        if self._first is None or step <= self._first[0]:
            self._first = (step, now)
            return None, None
        first_step, first_time = self._first
        if now <= first_time:
            return None, None
        rate = (step - first_step) / (now - first_time)
        return rate, max(0, self._total - step) / rate


def format_duration(seconds: float) -> str:
    """``1 h 05 min``, ``3 min 20 s`` or ``42 s``: how long, rounded to what a person plans with."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def ensure_progress(progress: Progress | None) -> Progress:
    """``progress`` itself, or a ``NullProgress`` when the caller passed None."""
    return progress if progress is not None else NullProgress()
