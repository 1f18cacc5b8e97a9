"""Read sd-scripts' console output: progress, loss, checkpoints, the end of a run.

sd-scripts reports through tqdm on stderr, redrawing one line with ``\\r``
(``steps:  50%|█████     | 2/4 [00:30<00:30, 15.15s/it, avr_loss=1.12]``), and through log lines
(``saving checkpoint: <path>``, ``model saved.``). The launcher feeds raw bytes in; this module turns
them into whole lines (``\\r`` and ``\\n`` both end a line) and lines into events.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_STEP_RE = re.compile(
    r"steps:\s*\d+%\|[^|]*\|\s*(?P<done>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<elapsed>[\d:]+)<(?P<remaining>[\d:?]+),\s*(?P<rate>[\d.?]+)\s*(?P<unit>s/it|it/s)"
    r"(?:,\s*(?P<postfix>[^\]]*))?\]"
)
_CHECKPOINT_RE = re.compile(r"saving checkpoint:\s*(?P<path>.+?)\s*$")
_MODEL_SAVED_RE = re.compile(r"\bmodel saved\.")


@dataclass(frozen=True)
class StepEvent:
    """One tqdm redraw of the ``steps`` bar."""

    done: int
    total: int
    elapsed_s: float
    remaining_s: float | None
    steps_per_s: float | None
    loss: float | None


@dataclass(frozen=True)
class CheckpointEvent:
    """sd-scripts announced it is writing a LoRA file (an intermediate or the final one)."""

    path: str


@dataclass(frozen=True)
class ModelSavedEvent:
    """sd-scripts' last message of a successful run (the file must still be checked)."""


@dataclass(frozen=True)
class LossPoint:
    """A step's final ``avr_loss`` (the last value sd-scripts printed for it): one per step.

    Made by the launcher, not by ``parse_line``: a step's value is only known to be final when a
    later step appears or the run ends (sd-scripts redraws the bar with the previous step's loss
    first, then with the new one).
    """

    step: int
    total: int
    loss: float


Event = StepEvent | CheckpointEvent | ModelSavedEvent


def _seconds(clock: str) -> float | None:
    """``"01:02"`` or ``"1:02:03"`` as seconds; None for tqdm's ``"?"``."""
    if "?" in clock:
        return None
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def _postfix_values(postfix: str | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in (postfix or "").split(","):
        key, sep, value = pair.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def parse_line(line: str) -> Event | None:
    """The event a line of sd-scripts output carries, or None for ordinary log lines."""
    step = _STEP_RE.search(line)
    if step:
        rate = _float_or_none(step["rate"])
        if rate is not None and step["unit"] == "s/it":
            rate = 1.0 / rate if rate > 0 else None
        return StepEvent(
            done=int(step["done"]),
            total=int(step["total"]),
            elapsed_s=_seconds(step["elapsed"]) or 0.0,
            remaining_s=_seconds(step["remaining"]),
            steps_per_s=rate,
            loss=_float_or_none(_postfix_values(step["postfix"]).get("avr_loss")),
        )
    checkpoint = _CHECKPOINT_RE.search(line)
    if checkpoint:
        return CheckpointEvent(path=checkpoint["path"])
    if _MODEL_SAVED_RE.search(line):
        return ModelSavedEvent()
    return None


class LineSplitter:
    """Incremental bytes → lines, where both ``\\r`` (tqdm redraws) and ``\\n`` end a line.

    Decoding is incremental so a UTF-8 character (tqdm's █ blocks) split across reads is kept whole.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[str]:
        text = self._pending + self._decoder.decode(chunk)
        parts = re.split(r"\r\n|\r|\n", text)
        self._pending = parts.pop()
        return [part for part in parts if part.strip()]

    def flush(self) -> list[str]:
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return [text] if text.strip() else []
