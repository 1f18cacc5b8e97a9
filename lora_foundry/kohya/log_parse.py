"""Read sd-scripts' console output: progress, loss, checkpoints, the end of a run.

sd-scripts reports through tqdm on stderr, redrawing one line with ``\\r``
(``steps:  50%|█████     | 2/4 [00:30<00:30, 15.15s/it, avr_loss=1.12]``), and through log lines
(``saving checkpoint: <path>``, ``model saved.``). Its LECO scripts (``train_leco.py``,
``sdxl_train_leco.py``) differ: the bar's postfix is ``loss=0.1234`` (``set_postfix(loss=...)``) and
each LoRA file is announced by a log record, ``saved model to: <path>``, which sd-scripts' Rich
handler renders as ``[time] INFO     saved model to: <path>   leco_train_util.py:91``. The exact
upstream formats live in tests/data/sd_scripts_leco_output.txt. The launcher feeds raw bytes in; this
module turns them into whole lines (``\\r`` and ``\\n`` both end a line) and lines into events.
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
_CHECKPOINT_RE = re.compile(r"(?:saving checkpoint|saved model to):\s*(?P<path>.+?)\s*$")
_RICH_SOURCE_RE = re.compile(r"\s{2,}[\w.-]+\.py:\d+$")  # Rich's right-aligned "file.py:NN" column
LOSS_KEYS = ("avr_loss", "loss")  # train_network.py's running mean; train_leco.py's step loss
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

    Made by the launcher, not by ``parse_events``: a step's value is only known to be final when a
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


def _postfix_loss(values: dict[str, str]) -> float | None:
    """The loss a bar carries: ``avr_loss`` (LoRA scripts) or ``loss`` (LECO scripts)."""
    return next((_float_or_none(values[k]) for k in LOSS_KEYS if k in values), None)


def parse_events(line: str) -> list[Event]:
    """Every event a line of sd-scripts output carries (a Rich log record can follow a tqdm bar
    on the same line: tqdm ends its redraws with ``\\r`` only)."""
    events: list[Event] = []
    step = _STEP_RE.search(line)
    if step:
        rate = _float_or_none(step["rate"])
        if rate is not None and step["unit"] == "s/it":
            rate = 1.0 / rate if rate > 0 else None
        events.append(StepEvent(
            done=int(step["done"]),
            total=int(step["total"]),
            elapsed_s=_seconds(step["elapsed"]) or 0.0,
            remaining_s=_seconds(step["remaining"]),
            steps_per_s=rate,
            loss=_postfix_loss(_postfix_values(step["postfix"])),
        ))
        line = line[step.end():]
    checkpoint = _CHECKPOINT_RE.search(_RICH_SOURCE_RE.sub("", line.rstrip()))
    if checkpoint:
        events.append(CheckpointEvent(path=checkpoint["path"]))
    elif _MODEL_SAVED_RE.search(line):
        events.append(ModelSavedEvent())
    return events


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
